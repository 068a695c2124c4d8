"""GET /api/v1/media/usage?org_id=: what an organization stores, against its quota."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.media import service
from kumo.media.schemas import UsageOut

app = make_resolver()


@app.get("/api/v1/media/usage", tags=["media"])
def media_usage(org_id: Annotated[str, Query(min_length=26, max_length=26)]) -> UsageOut:
    return service.usage_for(user_id=current_principal(app).user_id, org_id=org_id)


lambda_handler = http_handler(app)
