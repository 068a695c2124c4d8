"""GET /api/v1/media/{media_id}: a file of an org the caller belongs to, with short-lived links."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.media import service
from kumo.media.schemas import MediaOut

app = make_resolver()


@app.get("/api/v1/media/<media_id>", tags=["media"])
def get_media(media_id: str) -> MediaOut:
    media = service.get_media_for(current_principal(app).user_id, media_id, "viewer")
    return service.media_out(media)


lambda_handler = http_handler(app)
