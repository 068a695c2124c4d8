"""GET /api/v1/users/me: the caller's own profile."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.identity import service
from kumo.identity.schemas import UserOut, user_out

app = make_resolver()


@app.get("/api/v1/users/me", tags=["users"])
def get_me() -> UserOut:
    return user_out(service.get_user(current_principal(app).user_id))


lambda_handler = http_handler(app)
