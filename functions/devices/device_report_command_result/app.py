"""POST /api/v1/device/commands/{command_id}/result: the calling device reports on a command."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.devices import commands
from kumo.devices.schemas import CommandOut, CommandResultRequest

app = make_resolver()


@app.post("/api/v1/device/commands/<command_id>/result", tags=["device"])
def device_report_command_result(command_id: str, body: CommandResultRequest) -> CommandOut:
    command = commands.report_result(
        device_id=current_principal(app).device_id, command_id=command_id, request=body
    )
    return commands.command_out(command)


lambda_handler = http_handler(app)
