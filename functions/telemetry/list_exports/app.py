"""GET /api/v1/devices/{device_id}/exports: a device's exports of the past week, newest first."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page
from kumo.telemetry import exports
from kumo.telemetry.schemas import ExportOut

app = make_resolver()


@app.get("/api/v1/devices/<device_id>/exports", tags=["devices"])
def list_exports(
    device_id: str,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[ExportOut]:
    found, next_cursor = exports.list_exports(
        user_id=current_principal(app).user_id, device_id=device_id, limit=limit, cursor=cursor
    )
    return Page[ExportOut](items=[exports.export_out(e) for e in found], next_cursor=next_cursor)


lambda_handler = http_handler(app)
