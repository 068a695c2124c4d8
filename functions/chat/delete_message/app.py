"""DELETE /api/v1/chat/channels/{channel_id}/messages/{seq}: its author or an org admin deletes a
message; it keeps its sequence number, without content."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from kumo.chat import messages
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.delete("/api/v1/chat/channels/<channel_id>/messages/<seq>", status_code=204, tags=["chat"])
def delete_message(
    channel_id: str, seq: Annotated[int, Path(ge=1, le=10**12 - 1)]
) -> Response[None]:
    messages.delete_message(user_id=current_principal(app).user_id, channel_id=channel_id, seq=seq)
    return Response(status_code=204)


lambda_handler = http_handler(app)
