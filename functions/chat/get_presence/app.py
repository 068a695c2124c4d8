"""GET /api/v1/chat/channels/{channel_id}/presence: the channel's members, online, away or
offline, by their last heartbeat."""

from kumo.chat import presence
from kumo.chat.schemas import PresenceOut
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page

app = make_resolver()


@app.get("/api/v1/chat/channels/<channel_id>/presence", tags=["chat"])
def get_presence(channel_id: str, limit: Limit = None, cursor: Cursor = None) -> Page[PresenceOut]:
    found, next_cursor = presence.channel_presence(
        user_id=current_principal(app).user_id, channel_id=channel_id, limit=limit, cursor=cursor
    )
    return Page[PresenceOut](items=found, next_cursor=next_cursor)


lambda_handler = http_handler(app)
