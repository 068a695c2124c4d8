"""POST /api/v1/chat/channels/{channel_id}/leave: leave a channel (a no-op when not in it)."""

from aws_lambda_powertools.event_handler import Response
from kumo.chat import channels
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.post("/api/v1/chat/channels/<channel_id>/leave", status_code=204, tags=["chat"])
def leave_channel(channel_id: str) -> Response[None]:
    channels.leave(user_id=current_principal(app).user_id, channel_id=channel_id)
    return Response(status_code=204)


lambda_handler = http_handler(app)
