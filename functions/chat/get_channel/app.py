"""GET /api/v1/chat/channels/{channel_id}: a channel the caller can see."""

from kumo.chat import access, channels
from kumo.chat.schemas import ChannelOut
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.get("/api/v1/chat/channels/<channel_id>", tags=["chat"])
def get_channel(channel_id: str) -> ChannelOut:
    user_id = current_principal(app).user_id
    channel = access.visible_channel(user_id, channel_id)
    return channels.channel_out(channel, access.membership(channel_id, user_id))


lambda_handler = http_handler(app)
