"""GET /api/v1/orgs/{org_id}: one organization with the caller's role (404 to non-members)."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.orgs import service
from kumo.orgs.schemas import OrgOut, org_out

app = make_resolver()


@app.get("/api/v1/orgs/<org_id>", tags=["orgs"])
def get_org(org_id: str) -> OrgOut:
    org, membership = service.get_org(org_id=org_id, user_id=current_principal(app).user_id)
    return org_out(org, membership)


lambda_handler = http_handler(app)
