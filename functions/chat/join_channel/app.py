"""POST /api/v1/chat/channels/{channel_id}/join: join a public channel (with its password, if it
has one) or a private one the caller was invited to."""

from kumo.chat import access, channels
from kumo.chat.schemas import ChannelOut, JoinRequest
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.post("/api/v1/chat/channels/<channel_id>/join", tags=["chat"])
def join_channel(channel_id: str, body: JoinRequest) -> ChannelOut:
    user_id = current_principal(app).user_id
    channel = channels.join(user_id=user_id, channel_id=channel_id, password=body.password)
    return channels.channel_out(channel, access.membership(channel_id, user_id))


lambda_handler = http_handler(app)
