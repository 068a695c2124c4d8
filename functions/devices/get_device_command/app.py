"""GET /api/v1/devices/{device_id}/commands/{command_id}: one command, with its result."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.devices import commands
from kumo.devices.schemas import CommandOut

app = make_resolver()


@app.get("/api/v1/devices/<device_id>/commands/<command_id>", tags=["devices"])
def get_device_command(device_id: str, command_id: str) -> CommandOut:
    command = commands.get_command(
        user_id=current_principal(app).user_id, device_id=device_id, command_id=command_id
    )
    return commands.command_out(command)


lambda_handler = http_handler(app)
