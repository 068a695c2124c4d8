"""DELETE /api/v1/orgs/{org_id}/members/{user_id}: remove a member (owners and admins)."""

from aws_lambda_powertools.event_handler import Response
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.orgs import service

app = make_resolver()


@app.delete("/api/v1/orgs/<org_id>/members/<user_id>", status_code=204, tags=["orgs"])
def remove_member(org_id: str, user_id: str) -> Response[None]:
    service.remove_member(org_id=org_id, actor_id=current_principal(app).user_id, user_id=user_id)
    return Response(status_code=204)


lambda_handler = http_handler(app)
