"""POST /api/v1/chat/channels: an org member creates a channel (its creator is its first member)."""

from kumo.chat import access, channels
from kumo.chat.schemas import ChannelOut, CreateChannelRequest
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.post("/api/v1/chat/channels", status_code=201, tags=["chat"])
def create_channel(body: CreateChannelRequest) -> ChannelOut:
    user_id = current_principal(app).user_id
    channel = channels.create_channel(user_id=user_id, request=body)
    return channels.channel_out(channel, access.membership(channel.channel_id, user_id))


lambda_handler = http_handler(app)
