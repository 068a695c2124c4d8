"""PATCH /api/v1/users/me: change the display name or, with the current one, the password."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.identity import service
from kumo.identity.schemas import UpdateMeRequest, UserOut, user_out

app = make_resolver()


@app.patch("/api/v1/users/me", tags=["users"])
def update_me(body: UpdateMeRequest) -> UserOut:
    user = service.update_me(
        current_principal(app).user_id,
        display_name=body.display_name,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return user_out(user)


lambda_handler = http_handler(app)
