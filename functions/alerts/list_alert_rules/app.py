"""GET /api/v1/alert-rules?org_id=: an organization's alert rules, newest first, paginated."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.alerts import service
from kumo.alerts.schemas import AlertRuleOut
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page

app = make_resolver()


@app.get("/api/v1/alert-rules", tags=["alerts"])
def list_alert_rules(
    org_id: Annotated[str, Query(min_length=26, max_length=26)],
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[AlertRuleOut]:
    rules, next_cursor = service.list_rules(
        user_id=current_principal(app).user_id, org_id=org_id, limit=limit, cursor=cursor
    )
    return Page[AlertRuleOut](items=[service.rule_out(r) for r in rules], next_cursor=next_cursor)


lambda_handler = http_handler(app)
