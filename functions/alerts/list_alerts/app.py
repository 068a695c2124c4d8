"""GET /api/v1/alerts?org_id=&state=: an organization's alerts, newest first, paginated."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.alerts import service
from kumo.alerts.schemas import AlertOut, AlertState
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page

app = make_resolver()


@app.get("/api/v1/alerts", tags=["alerts"])
def list_alerts(
    org_id: Annotated[str, Query(min_length=26, max_length=26)],
    state: AlertState | None = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[AlertOut]:
    alerts, next_cursor = service.list_alerts(
        user_id=current_principal(app).user_id,
        org_id=org_id,
        state=state,
        limit=limit,
        cursor=cursor,
    )
    return Page[AlertOut](items=[service.alert_out(a) for a in alerts], next_cursor=next_cursor)


lambda_handler = http_handler(app)
