"""GET /api/v1/admin/users: every account, newest first, paginated (admins only)."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page
from kumo.identity import service
from kumo.identity.schemas import UserOut, user_out

app = make_resolver()


@app.get("/api/v1/admin/users", tags=["admin"])
def list_users(
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[UserOut]:
    current_principal(app).require_role("admin")
    users, next_cursor = service.list_users(limit=limit, cursor=cursor)
    return Page[UserOut](items=[user_out(u) for u in users], next_cursor=next_cursor)


lambda_handler = http_handler(app)
