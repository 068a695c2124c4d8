"""POST /api/v1/devices/{device_id}/commands: queue a command and push it to the device."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.devices import commands
from kumo.devices.schemas import CommandOut, SendCommandRequest

app = make_resolver()


@app.post("/api/v1/devices/<device_id>/commands", status_code=201, tags=["devices"])
def send_device_command(device_id: str, body: SendCommandRequest) -> CommandOut:
    command = commands.send_command(
        user_id=current_principal(app).user_id, device_id=device_id, request=body
    )
    return commands.command_out(command)


lambda_handler = http_handler(app)
