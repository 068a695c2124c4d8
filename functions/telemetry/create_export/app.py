"""POST /api/v1/devices/{device_id}/exports: queue a CSV export of the device's telemetry."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.telemetry import exports
from kumo.telemetry.schemas import ExportOut, ExportRequest

app = make_resolver()

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="The same key and body again answer the first export instead of a new one.",
    ),
]


@app.post(
    "/api/v1/devices/<device_id>/exports",
    tags=["devices"],
    responses={
        202: {"description": "Queued", "content": {"application/json": {"model": ExportOut}}}
    },
)
def create_export(
    device_id: str, body: ExportRequest, idempotency_key: IdempotencyKey = None
) -> Response[str]:
    export, replayed = exports.request_export(
        user_id=current_principal(app).user_id,
        device_id=device_id,
        request=body,
        idempotency_key=idempotency_key,
    )
    headers = {"Location": f"/api/v1/devices/{device_id}/exports/{export.export_id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    body_out = exports.export_out(export).model_dump_json(by_alias=True)
    return Response(
        status_code=202, content_type="application/json", body=body_out, headers=headers
    )


lambda_handler = http_handler(app)
