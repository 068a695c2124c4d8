"""GET /api/v1/devices?org_id=: an organization's devices, paginated, optionally by status."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page
from kumo.devices import service
from kumo.devices.schemas import Connectivity, DeviceOut

app = make_resolver()


@app.get("/api/v1/devices", tags=["devices"])
def list_devices(
    org_id: Annotated[str, Query(min_length=26, max_length=26)],
    status: Connectivity | None = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[DeviceOut]:
    devices, next_cursor = service.list_devices(
        user_id=current_principal(app).user_id,
        org_id=org_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return Page[DeviceOut](items=[service.device_out(d) for d in devices], next_cursor=next_cursor)


lambda_handler = http_handler(app)
