"""DELETE /api/v1/media/{media_id}: the uploader or an org admin removes a file and its objects."""

from aws_lambda_powertools.event_handler import Response
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.media import service

app = make_resolver()


@app.delete("/api/v1/media/<media_id>", status_code=204, tags=["media"])
def delete_media(media_id: str) -> Response[None]:
    service.delete_media(user_id=current_principal(app).user_id, media_id=media_id)
    return Response(status_code=204)


lambda_handler = http_handler(app)
