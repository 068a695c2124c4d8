"""GET /api/v1/devices/{device_id}/config: the desired config and what the device applied."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.devices import service
from kumo.devices.schemas import DeviceConfigOut

app = make_resolver()


@app.get("/api/v1/devices/<device_id>/config", tags=["devices"])
def get_device_config(device_id: str) -> DeviceConfigOut:
    device = service.get_device_for(current_principal(app).user_id, device_id, "viewer")
    return service.config_out(device)


lambda_handler = http_handler(app)
