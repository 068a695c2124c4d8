"""GET /api/v1/orgs/{org_id}/invitations: pending invitations, paginated (owners and admins)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.pagination import Page
from kumo.orgs import service
from kumo.orgs.schemas import InvitationOut, invitation_out

app = make_resolver()


@app.get("/api/v1/orgs/<org_id>/invitations", tags=["orgs"])
def list_invitations(
    org_id: str,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Page[InvitationOut]:
    invitations, next_cursor = service.list_invitations(
        org_id=org_id, actor_id=current_principal(app).user_id, limit=limit, cursor=cursor
    )
    return Page[InvitationOut](
        items=[invitation_out(i) for i in invitations], next_cursor=next_cursor
    )


lambda_handler = http_handler(app)
