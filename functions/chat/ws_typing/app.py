"""WebSocket `typing`: a member is typing in a channel; its other viewers are told, and
nothing is stored. No reply, unless the notice is refused."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.chat import presence
from kumo.chat.schemas import TypingFrame
from kumo.core import metrics
from kumo.core.principal import Principal
from kumo.realtime import service, socket

logger = Logger()


def _typing(connection_id: str, principal: Principal, body: str | None) -> None:
    frame = service.parse(body, TypingFrame)
    presence.typing(principal.user_id, frame.channel_id, connection_id=connection_id)


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return socket.handle(event, _typing)
