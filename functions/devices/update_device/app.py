"""PATCH /api/v1/devices/{device_id}: rename, retype, change metadata, enable or disable."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.devices import service
from kumo.devices.schemas import DeviceOut, UpdateDeviceRequest

app = make_resolver()


@app.patch("/api/v1/devices/<device_id>", tags=["devices"])
def update_device(device_id: str, body: UpdateDeviceRequest) -> DeviceOut:
    device = service.update_device(
        user_id=current_principal(app).user_id, device_id=device_id, request=body
    )
    return service.device_out(device)


lambda_handler = http_handler(app)
