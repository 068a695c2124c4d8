"""POST /api/v1/orgs/{org_id}/invitations: invite an e-mail address (owners and admins)."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.orgs import service
from kumo.orgs.schemas import InvitationOut, InviteRequest, invitation_out

app = make_resolver()


@app.post("/api/v1/orgs/<org_id>/invitations", status_code=201, tags=["orgs"])
def invite_member(org_id: str, body: InviteRequest) -> InvitationOut:
    principal = current_principal(app)
    invitation = service.invite_member(
        org_id=org_id,
        actor_id=principal.user_id,
        actor_email=principal.email,
        email=body.email,
        role=body.role,
    )
    return invitation_out(invitation)


lambda_handler = http_handler(app)
