"""GET /api/v1/chat/channels/{channel_id}/sketches: the channel's sketches, oldest first."""

from kumo.chat import sketches
from kumo.chat.schemas import SketchOut
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page

app = make_resolver()


@app.get("/api/v1/chat/channels/<channel_id>/sketches", tags=["chat"])
def list_sketches(channel_id: str, limit: Limit = None, cursor: Cursor = None) -> Page[SketchOut]:
    found, next_cursor = sketches.list_sketches(
        user_id=current_principal(app).user_id, channel_id=channel_id, limit=limit, cursor=cursor
    )
    return Page[SketchOut](items=[sketches.sketch_out(s) for s in found], next_cursor=next_cursor)


lambda_handler = http_handler(app)
