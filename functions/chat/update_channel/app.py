"""PATCH /api/v1/chat/channels/{channel_id}: its creator or an org admin renames it, changes its
description or its password."""

from kumo.chat import access, channels
from kumo.chat.schemas import ChannelOut, UpdateChannelRequest
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.patch("/api/v1/chat/channels/<channel_id>", tags=["chat"])
def update_channel(channel_id: str, body: UpdateChannelRequest) -> ChannelOut:
    user_id = current_principal(app).user_id
    channel = channels.update_channel(user_id=user_id, channel_id=channel_id, request=body)
    return channels.channel_out(channel, access.membership(channel_id, user_id))


lambda_handler = http_handler(app)
