"""GET /api/v1/orgs: the organizations the caller belongs to, with the caller's role, paginated."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page
from kumo.orgs import service
from kumo.orgs.schemas import OrgOut, org_out

app = make_resolver()


@app.get("/api/v1/orgs", tags=["orgs"])
def list_my_orgs(
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[OrgOut]:
    pairs, next_cursor = service.list_my_orgs(
        user_id=current_principal(app).user_id, limit=limit, cursor=cursor
    )
    return Page[OrgOut](items=[org_out(o, m) for o, m in pairs], next_cursor=next_cursor)


lambda_handler = http_handler(app)
