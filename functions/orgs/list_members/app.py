"""GET /api/v1/orgs/{org_id}/members: the organization's members and roles, paginated."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page
from kumo.orgs import service
from kumo.orgs.schemas import MemberOut, member_out

app = make_resolver()


@app.get("/api/v1/orgs/<org_id>/members", tags=["orgs"])
def list_members(
    org_id: str,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[MemberOut]:
    members, next_cursor = service.list_members(
        org_id=org_id, user_id=current_principal(app).user_id, limit=limit, cursor=cursor
    )
    return Page[MemberOut](items=[member_out(m) for m in members], next_cursor=next_cursor)


lambda_handler = http_handler(app)
