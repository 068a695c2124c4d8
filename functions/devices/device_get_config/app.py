"""GET /api/v1/device/config: the calling device's desired config and its version."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.devices import service
from kumo.devices.schemas import DeviceConfigOut

app = make_resolver()


@app.get("/api/v1/device/config", tags=["device"])
def device_get_config() -> DeviceConfigOut:
    device = service.get_own_device(current_principal(app).device_id)
    return service.config_out(device)


lambda_handler = http_handler(app)
