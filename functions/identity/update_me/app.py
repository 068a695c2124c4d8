"""PATCH /api/v1/users/me: change the display name, the avatar or, with the current one, the
password."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.identity import service
from kumo.identity.schemas import UpdateMeRequest, UserOut, user_out
from kumo.media import service as media

app = make_resolver()


@app.patch("/api/v1/users/me", tags=["users"])
def update_me(body: UpdateMeRequest) -> UserOut:
    user_id = current_principal(app).user_id
    avatar: tuple[str | None] | None = None
    if "avatar_media_id" in body.model_fields_set:
        # Identity sits below media: the handler asks media whether the file may be a face.
        if body.avatar_media_id is not None:
            media.require_ready(
                body.avatar_media_id,
                org_id=None,
                purpose="avatar",
                field="avatar_media_id",
                uploaded_by=user_id,
            )
        avatar = (body.avatar_media_id,)
    user = service.update_me(
        user_id,
        display_name=body.display_name,
        current_password=body.current_password,
        new_password=body.new_password,
        avatar=avatar,
    )
    return user_out(user)


lambda_handler = http_handler(app)
