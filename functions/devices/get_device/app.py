"""GET /api/v1/devices/{device_id}: one device of an org the caller belongs to."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.devices import service
from kumo.devices.schemas import DeviceOut

app = make_resolver()


@app.get("/api/v1/devices/<device_id>", tags=["devices"])
def get_device(device_id: str) -> DeviceOut:
    device = service.get_device_for(current_principal(app).user_id, device_id, "viewer")
    return service.device_out(device)


lambda_handler = http_handler(app)
