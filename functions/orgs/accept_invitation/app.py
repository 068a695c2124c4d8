"""POST /api/v1/invitations/accept: join an organization with the token mailed to the caller."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.orgs import service
from kumo.orgs.schemas import AcceptInvitationRequest, MembershipOut, membership_out

app = make_resolver()


@app.post("/api/v1/invitations/accept", tags=["orgs"])
def accept_invitation(body: AcceptInvitationRequest) -> MembershipOut:
    principal = current_principal(app)
    membership = service.accept_invitation(
        raw_token=body.token, user_id=principal.user_id, email=principal.email
    )
    return membership_out(membership)


lambda_handler = http_handler(app)
