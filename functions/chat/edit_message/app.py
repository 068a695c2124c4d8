"""PATCH /api/v1/chat/channels/{channel_id}/messages/{seq}: its author edits a message."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from kumo.chat import messages
from kumo.chat.schemas import EditMessageRequest, MessageOut
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.patch("/api/v1/chat/channels/<channel_id>/messages/<seq>", tags=["chat"])
def edit_message(
    channel_id: str, seq: Annotated[int, Path(ge=1, le=10**12 - 1)], body: EditMessageRequest
) -> MessageOut:
    return messages.edit_message(
        user_id=current_principal(app).user_id, channel_id=channel_id, seq=seq, text=body.text
    )


lambda_handler = http_handler(app)
