"""POST /api/v1/chat/channels/{channel_id}/read: move the caller's read marker forward."""

from kumo.chat import access, channels, messages
from kumo.chat.schemas import ChannelOut, ReadRequest
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.post("/api/v1/chat/channels/<channel_id>/read", tags=["chat"])
def mark_read(channel_id: str, body: ReadRequest) -> ChannelOut:
    user_id = current_principal(app).user_id
    member = messages.mark_read(user_id=user_id, channel_id=channel_id, seq=body.seq)
    return channels.channel_out(access.visible_channel(user_id, channel_id), member)


lambda_handler = http_handler(app)
