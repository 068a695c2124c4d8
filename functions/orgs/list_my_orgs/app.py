"""GET /api/v1/orgs: the organizations the caller belongs to, with the caller's role, paginated."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.pagination import Page
from kumo.orgs import service
from kumo.orgs.schemas import OrgOut, org_out

app = make_resolver()


@app.get("/api/v1/orgs", tags=["orgs"])
def list_my_orgs(
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Page[OrgOut]:
    pairs, next_cursor = service.list_my_orgs(
        user_id=current_principal(app).user_id, limit=limit, cursor=cursor
    )
    return Page[OrgOut](items=[org_out(o, m) for o, m in pairs], next_cursor=next_cursor)


lambda_handler = http_handler(app)
