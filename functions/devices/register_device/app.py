"""POST /api/v1/devices: register a device in an org; its API key (and certificate) shown once."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.devices import service
from kumo.devices.schemas import CertificateOut, DeviceCreated, RegisterDeviceRequest

app = make_resolver()


@app.post("/api/v1/devices", status_code=201, tags=["devices"])
def register_device(body: RegisterDeviceRequest) -> DeviceCreated:
    device, api_key, identity = service.register_device(
        user_id=current_principal(app).user_id, request=body
    )
    certificate = (
        CertificateOut(
            thing_name=identity.thing_name,
            certificate_id=identity.certificate_id,
            certificate_pem=identity.certificate_pem,
            private_key=identity.private_key,
        )
        if identity
        else None
    )
    return DeviceCreated(
        **service.device_out(device).model_dump(), api_key=api_key, certificate=certificate
    )


lambda_handler = http_handler(app)
