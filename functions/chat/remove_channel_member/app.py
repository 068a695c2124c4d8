"""DELETE /api/v1/chat/channels/{channel_id}/members/{user_id}: the creator or an org admin
removes a member, who is told on their own live channel and stops receiving the channel."""

from aws_lambda_powertools.event_handler import Response
from kumo.chat import channels
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.delete("/api/v1/chat/channels/<channel_id>/members/<user_id>", status_code=204, tags=["chat"])
def remove_channel_member(channel_id: str, user_id: str) -> Response[None]:
    channels.remove_member(
        user_id=current_principal(app).user_id, channel_id=channel_id, member_id=user_id
    )
    return Response(status_code=204)


lambda_handler = http_handler(app)
