"""PUT /api/v1/devices/{device_id}/config: the desired config; each change is a new version.

A device with an IoT thing also finds it in its config shadow (kumo.devices.shadow)."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.devices import service, shadow
from kumo.devices.schemas import DesiredConfigRequest, DeviceConfigOut

app = make_resolver()


@app.put("/api/v1/devices/<device_id>/config", tags=["devices"])
def set_device_config(device_id: str, body: DesiredConfigRequest) -> DeviceConfigOut:
    device = shadow.set_desired_config(
        user_id=current_principal(app).user_id, device_id=device_id, config=body.config
    )
    return service.config_out(device)


lambda_handler = http_handler(app)
