"""GET /api/v1/devices/{device_id}/commands: a device's commands, newest first, by status."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page
from kumo.devices import commands
from kumo.devices.schemas import CommandOut, CommandStatus

app = make_resolver()


@app.get("/api/v1/devices/<device_id>/commands", tags=["devices"])
def list_device_commands(
    device_id: str,
    status: CommandStatus | None = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[CommandOut]:
    found, next_cursor = commands.list_commands(
        user_id=current_principal(app).user_id,
        device_id=device_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return Page[CommandOut](items=[commands.command_out(c) for c in found], next_cursor=next_cursor)


lambda_handler = http_handler(app)
