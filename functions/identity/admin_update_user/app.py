"""PATCH /api/v1/admin/users/{user_id}: set a user's platform role or active flag (admins only)."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.identity import service
from kumo.identity.schemas import AdminUpdateUserRequest, UserOut, user_out

app = make_resolver()


@app.patch("/api/v1/admin/users/<user_id>", tags=["admin"])
def update_user(user_id: str, body: AdminUpdateUserRequest) -> UserOut:
    principal = current_principal(app)
    principal.require_role("admin")
    user = service.admin_update_user(
        actor_id=principal.user_id, user_id=user_id, role=body.role, active=body.active
    )
    return user_out(user)


lambda_handler = http_handler(app)
