"""GET /api/v1/media?org_id=&purpose=: an organization's files, newest first, paginated."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page
from kumo.media import service
from kumo.media.purposes import Purpose
from kumo.media.schemas import MediaOut

app = make_resolver()


@app.get("/api/v1/media", tags=["media"])
def list_media(
    org_id: Annotated[str, Query(min_length=26, max_length=26)],
    purpose: Purpose | None = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[MediaOut]:
    files, next_cursor = service.list_media(
        user_id=current_principal(app).user_id,
        org_id=org_id,
        purpose=purpose,
        limit=limit,
        cursor=cursor,
    )
    return Page[MediaOut](items=[service.media_out(m) for m in files], next_cursor=next_cursor)


lambda_handler = http_handler(app)
