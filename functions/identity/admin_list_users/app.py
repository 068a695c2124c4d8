"""GET /api/v1/admin/users: every account, newest first, paginated (admins only)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.pagination import Page
from kumo.identity import service
from kumo.identity.schemas import UserOut, user_out

app = make_resolver()


@app.get("/api/v1/admin/users", tags=["admin"])
def list_users(
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Page[UserOut]:
    current_principal(app).require_role("admin")
    users, next_cursor = service.list_users(limit=limit, cursor=cursor)
    return Page[UserOut](items=[user_out(u) for u in users], next_cursor=next_cursor)


lambda_handler = http_handler(app)
