"""DELETE /api/v1/orgs/{org_id}/invitations/{invitation_id}: revoke; its link stops working."""

from aws_lambda_powertools.event_handler import Response
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.orgs import service

app = make_resolver()


@app.delete("/api/v1/orgs/<org_id>/invitations/<invitation_id>", status_code=204, tags=["orgs"])
def revoke_invitation(org_id: str, invitation_id: str) -> Response[None]:
    service.revoke_invitation(
        org_id=org_id, actor_id=current_principal(app).user_id, invitation_id=invitation_id
    )
    return Response(status_code=204)


lambda_handler = http_handler(app)
