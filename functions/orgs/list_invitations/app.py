"""GET /api/v1/orgs/{org_id}/invitations: pending invitations, paginated (owners and admins)."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page
from kumo.orgs import service
from kumo.orgs.schemas import InvitationOut, invitation_out

app = make_resolver()


@app.get("/api/v1/orgs/<org_id>/invitations", tags=["orgs"])
def list_invitations(
    org_id: str,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[InvitationOut]:
    invitations, next_cursor = service.list_invitations(
        org_id=org_id, actor_id=current_principal(app).user_id, limit=limit, cursor=cursor
    )
    return Page[InvitationOut](
        items=[invitation_out(i) for i in invitations], next_cursor=next_cursor
    )


lambda_handler = http_handler(app)
