"""POST /api/v1/chat/channels/{channel_id}/messages: a member sends a message (text, an image);
it gets the channel's next sequence number and goes to the channel's live subscribers."""

from aws_lambda_powertools.event_handler import Response
from kumo.chat import messages
from kumo.chat.schemas import MessageOut, PostMessageRequest
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.post(
    "/api/v1/chat/channels/<channel_id>/messages",
    tags=["chat"],
    responses={
        201: {"description": "Sent", "content": {"application/json": {"model": MessageOut}}},
        200: {
            "description": "Sent before with this client_id: the message stored then",
            "content": {"application/json": {"model": MessageOut}},
        },
    },
)
def post_message(channel_id: str, body: PostMessageRequest) -> Response[str]:
    out, replayed = messages.post_message(
        user_id=current_principal(app).user_id, channel_id=channel_id, request=body
    )
    return Response(
        status_code=200 if replayed else 201,
        content_type="application/json",
        body=out.model_dump_json(),
    )


lambda_handler = http_handler(app)
