"""GET /api/v1/devices/{device_id}/exports/{export_id}: an export's state; its download link
when ready."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.telemetry import exports
from kumo.telemetry.schemas import ExportOut

app = make_resolver()


@app.get("/api/v1/devices/<device_id>/exports/<export_id>", tags=["devices"])
def get_export(device_id: str, export_id: str) -> ExportOut:
    export = exports.get_export(
        user_id=current_principal(app).user_id, device_id=device_id, export_id=export_id
    )
    return exports.export_out(export)


lambda_handler = http_handler(app)
