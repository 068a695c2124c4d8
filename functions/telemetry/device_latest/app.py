"""GET /api/v1/devices/{device_id}/latest: the newest value of every metric of a device."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.telemetry import query
from kumo.telemetry.schemas import LatestOut

app = make_resolver()


@app.get("/api/v1/devices/<device_id>/latest", tags=["devices"])
def device_latest(device_id: str) -> LatestOut:
    return query.device_latest(user_id=current_principal(app).user_id, device_id=device_id)


lambda_handler = http_handler(app)
