"""POST /api/v1/orgs: create an organization; the caller becomes its owner."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.orgs import service
from kumo.orgs.schemas import CreateOrgRequest, OrgOut, org_out

app = make_resolver()


@app.post("/api/v1/orgs", status_code=201, tags=["orgs"])
def create_org(body: CreateOrgRequest) -> OrgOut:
    principal = current_principal(app)
    org, membership = service.create_org(
        name=body.name, owner_id=principal.user_id, owner_email=principal.email
    )
    return org_out(org, membership)


lambda_handler = http_handler(app)
