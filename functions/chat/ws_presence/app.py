"""WebSocket `presence`: a heartbeat saying online, away or offline; the reply is the status
recorded and until when it counts."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.chat import presence
from kumo.chat.schemas import PresenceFrame
from kumo.core import metrics
from kumo.core.principal import Principal
from kumo.realtime import service, socket

logger = Logger()


def _heartbeat(connection_id: str, principal: Principal, body: str | None) -> dict[str, Any]:
    frame = service.parse(body, PresenceFrame)
    shown = presence.heartbeat(principal.user_id, frame.status, connection_id=connection_id)
    return {"event": "presence_recorded", "id": frame.id, **shown.model_dump()}


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return socket.handle(event, _heartbeat)
