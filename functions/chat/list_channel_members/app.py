"""GET /api/v1/chat/channels/{channel_id}/members: who is in a channel the caller can see."""

from kumo.chat import channels
from kumo.chat.schemas import ChannelMemberOut
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page

app = make_resolver()


@app.get("/api/v1/chat/channels/<channel_id>/members", tags=["chat"])
def list_channel_members(
    channel_id: str, limit: Limit = None, cursor: Cursor = None
) -> Page[ChannelMemberOut]:
    found, next_cursor = channels.members(
        user_id=current_principal(app).user_id, channel_id=channel_id, limit=limit, cursor=cursor
    )
    return Page[ChannelMemberOut](
        items=[channels.member_out(m) for m in found], next_cursor=next_cursor
    )


lambda_handler = http_handler(app)
