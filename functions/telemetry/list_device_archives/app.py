"""GET /api/v1/devices/{device_id}/archives: the device's archived raw telemetry, by day."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page
from kumo.telemetry import archive
from kumo.telemetry.schemas import DAY_PATTERN, ArchiveOut

app = make_resolver()


@app.get("/api/v1/devices/<device_id>/archives", tags=["devices"])
def list_device_archives(
    device_id: str,
    start: Annotated[str | None, Query(alias="from", pattern=DAY_PATTERN)] = None,
    end: Annotated[str | None, Query(alias="to", pattern=DAY_PATTERN)] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[ArchiveOut]:
    archives, next_cursor = archive.list_archives(
        user_id=current_principal(app).user_id,
        device_id=device_id,
        start=start,
        end=end,
        limit=limit,
        cursor=cursor,
    )
    return Page[ArchiveOut](items=archives, next_cursor=next_cursor)


lambda_handler = http_handler(app)
