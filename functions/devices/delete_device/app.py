"""DELETE /api/v1/devices/{device_id}: remove a device, revoking its key and certificate."""

from aws_lambda_powertools.event_handler import Response
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.devices import service

app = make_resolver()


@app.delete("/api/v1/devices/<device_id>", status_code=204, tags=["devices"])
def delete_device(device_id: str) -> Response[None]:
    service.delete_device(user_id=current_principal(app).user_id, device_id=device_id)
    return Response(status_code=204)


lambda_handler = http_handler(app)
