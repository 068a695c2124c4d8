"""GET /api/v1/device/commands: the calling device's pending commands, oldest first (polling)."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.pagination import Page
from kumo.devices import commands
from kumo.devices.schemas import CommandOut

app = make_resolver()


@app.get("/api/v1/device/commands", tags=["device"])
def device_pending_commands() -> Page[CommandOut]:
    pending = commands.pending_commands(current_principal(app).device_id)
    return Page[CommandOut](items=[commands.command_out(c) for c in pending])


lambda_handler = http_handler(app)
