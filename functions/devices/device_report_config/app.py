"""POST /api/v1/device/config/applied: the device reports the config version it applied."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.devices import service
from kumo.devices.schemas import DeviceConfigOut, ReportedConfigRequest

app = make_resolver()


@app.post("/api/v1/device/config/applied", tags=["device"])
def device_report_config(body: ReportedConfigRequest) -> DeviceConfigOut:
    device = service.report_config(
        device_id=current_principal(app).device_id, version=body.version, config=body.config
    )
    return service.config_out(device)


lambda_handler = http_handler(app)
