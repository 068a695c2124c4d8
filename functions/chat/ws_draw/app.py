"""WebSocket `draw`: a member adds an operation to a sketch (a stroke, or erasing or restoring
strokes); the reply is the stored operation with its sequence number, and the sketch's other
viewers get it too."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.chat import sketches
from kumo.chat.schemas import DrawFrame
from kumo.core import metrics
from kumo.core.principal import Principal
from kumo.realtime import service, socket

logger = Logger()


def _draw(connection_id: str, principal: Principal, body: str | None) -> dict[str, Any]:
    frame = service.parse(body, DrawFrame)
    out, replayed = sketches.draw(
        user_id=principal.user_id, frame=frame, connection_id=connection_id
    )
    return {"event": "drawn", "id": frame.id, "replayed": replayed, "op": out.model_dump()}


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return socket.handle(event, _draw)
