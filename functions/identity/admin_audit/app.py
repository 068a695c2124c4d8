"""GET /api/v1/admin/audit: security events of one UTC day, newest first (admins only)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page
from kumo.identity import service
from kumo.identity.schemas import AuditEventOut, audit_event_out

app = make_resolver()


@app.get("/api/v1/admin/audit", tags=["admin"])
def list_audit(
    day: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[AuditEventOut]:
    current_principal(app).require_role("admin")
    events, next_cursor = service.list_audit(day=day, limit=limit, cursor=cursor)
    return Page[AuditEventOut](items=[audit_event_out(e) for e in events], next_cursor=next_cursor)


lambda_handler = http_handler(app)
