"""POST /api/v1/devices/{device_id}/rotate-key: a new API key, shown once; the old one stops."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.devices import service
from kumo.devices.schemas import ApiKeyOut

app = make_resolver()


@app.post("/api/v1/devices/<device_id>/rotate-key", tags=["devices"])
def rotate_device_key(device_id: str) -> ApiKeyOut:
    api_key = service.rotate_key(user_id=current_principal(app).user_id, device_id=device_id)
    return ApiKeyOut(id=device_id, api_key=api_key)


lambda_handler = http_handler(app)
