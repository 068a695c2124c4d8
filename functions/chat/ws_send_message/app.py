"""WebSocket `send_message`: a member sends a message to a channel, as POST .../messages does,
within the allowance of the connection as well as the user's; the reply is the stored message."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.chat import messages
from kumo.chat.schemas import SendMessageFrame
from kumo.core import metrics
from kumo.core.principal import Principal
from kumo.realtime import service, socket

logger = Logger()


def _send(connection_id: str, principal: Principal, body: str | None) -> dict[str, Any]:
    frame = service.parse(body, SendMessageFrame)
    out, replayed = messages.post_message(
        user_id=principal.user_id,
        channel_id=frame.channel_id,
        request=frame,
        connection_id=connection_id,
    )
    return {"event": "sent", "id": frame.id, "replayed": replayed, "message": out.model_dump()}


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return socket.handle(event, _send)
