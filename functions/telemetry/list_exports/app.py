"""GET /api/v1/devices/{device_id}/exports: a device's exports of the past week, newest first."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.pagination import Page
from kumo.telemetry import exports
from kumo.telemetry.schemas import ExportOut

app = make_resolver()


@app.get("/api/v1/devices/<device_id>/exports", tags=["devices"])
def list_exports(
    device_id: str,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Page[ExportOut]:
    found, next_cursor = exports.list_exports(
        user_id=current_principal(app).user_id, device_id=device_id, limit=limit, cursor=cursor
    )
    return Page[ExportOut](items=[exports.export_out(e) for e in found], next_cursor=next_cursor)


lambda_handler = http_handler(app)
