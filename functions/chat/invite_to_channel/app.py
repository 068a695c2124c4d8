"""POST /api/v1/chat/channels/{channel_id}/invitations: a member of a private channel invites a
member of its org, who is told on their own live channel."""

from aws_lambda_powertools.event_handler import Response
from kumo.chat import channels
from kumo.chat.schemas import ChannelInviteRequest
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.post("/api/v1/chat/channels/<channel_id>/invitations", status_code=204, tags=["chat"])
def invite_to_channel(channel_id: str, body: ChannelInviteRequest) -> Response[None]:
    channels.invite(
        user_id=current_principal(app).user_id, channel_id=channel_id, invitee_id=body.user_id
    )
    return Response(status_code=204)


lambda_handler = http_handler(app)
