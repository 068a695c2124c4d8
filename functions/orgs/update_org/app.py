"""PATCH /api/v1/orgs/{org_id}: rename an organization or set its raw telemetry retention."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.orgs import service
from kumo.orgs.schemas import OrgOut, UpdateOrgRequest, org_out

app = make_resolver()


@app.patch("/api/v1/orgs/<org_id>", tags=["orgs"])
def update_org(org_id: str, body: UpdateOrgRequest) -> OrgOut:
    org, membership = service.update_org(
        org_id=org_id,
        user_id=current_principal(app).user_id,
        name=body.name,
        telemetry_retention_days=body.telemetry_retention_days,
    )
    return org_out(org, membership)


lambda_handler = http_handler(app)
