"""DELETE /api/v1/chat/channels/{channel_id}: its creator or an org admin deletes it, messages
and all; its members are told on their own live channel."""

from aws_lambda_powertools.event_handler import Response
from kumo.chat import channels
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.delete("/api/v1/chat/channels/<channel_id>", status_code=204, tags=["chat"])
def delete_channel(channel_id: str) -> Response[None]:
    channels.delete_channel(user_id=current_principal(app).user_id, channel_id=channel_id)
    return Response(status_code=204)


lambda_handler = http_handler(app)
