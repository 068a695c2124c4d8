"""POST /api/v1/orgs/{org_id}/leave: the caller leaves the organization (not its last owner)."""

from aws_lambda_powertools.event_handler import Response
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.orgs import service

app = make_resolver()


@app.post("/api/v1/orgs/<org_id>/leave", status_code=204, tags=["orgs"])
def leave_org(org_id: str) -> Response[None]:
    service.leave_org(org_id=org_id, user_id=current_principal(app).user_id)
    return Response(status_code=204)


lambda_handler = http_handler(app)
