"""PATCH /api/v1/orgs/{org_id}/members/{user_id}: change a member's org role (owners and admins)."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.orgs import service
from kumo.orgs.schemas import MemberOut, UpdateMemberRequest, member_out

app = make_resolver()


@app.patch("/api/v1/orgs/<org_id>/members/<user_id>", tags=["orgs"])
def update_member(org_id: str, user_id: str, body: UpdateMemberRequest) -> MemberOut:
    membership = service.change_member_role(
        org_id=org_id, actor_id=current_principal(app).user_id, user_id=user_id, role=body.role
    )
    return member_out(membership)


lambda_handler = http_handler(app)
