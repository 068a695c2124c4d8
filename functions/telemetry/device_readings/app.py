"""GET /api/v1/devices/{device_id}/readings: one metric over a time range, raw or rolled up."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page
from kumo.telemetry import query
from kumo.telemetry.schemas import METRIC_PATTERN, MOMENT_PATTERN, PointOut, Resolution

app = make_resolver()


@app.get("/api/v1/devices/<device_id>/readings", tags=["devices"])
def device_readings(
    device_id: str,
    metric: Annotated[str, Query(pattern=METRIC_PATTERN)],
    start: Annotated[str | None, Query(alias="from", max_length=40, pattern=MOMENT_PATTERN)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40, pattern=MOMENT_PATTERN)] = None,
    resolution: Resolution = "raw",
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[PointOut]:
    points, next_cursor = query.device_readings(
        user_id=current_principal(app).user_id,
        device_id=device_id,
        metric=metric,
        start=start,
        end=end,
        resolution=resolution,
        limit=limit,
        cursor=cursor,
    )
    return Page[PointOut](items=points, next_cursor=next_cursor)


lambda_handler = http_handler(app)
