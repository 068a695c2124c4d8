"""POST /api/v1/device/readings: the calling device sends one reading or a batch over HTTP."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.telemetry import ingest
from kumo.telemetry.schemas import ReadingsAccepted

app = make_resolver()


@app.post("/api/v1/device/readings", status_code=202, tags=["device"])
def device_post_readings(body: Annotated[dict[str, Any], Body()]) -> ReadingsAccepted:
    principal = current_principal(app)
    return ingest.ingest_http(
        org_id=principal.org_id,
        device_id=principal.device_id,
        payload=body,
        size=len((app.current_event.body or "").encode()),
    )


lambda_handler = http_handler(app)
