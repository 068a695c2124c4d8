"""WebSocket $default: `ping` answers `pong`; any other action gets a 400 problem."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import metrics
from kumo.core.principal import Principal
from kumo.realtime import service, socket

logger = Logger()


def _default(connection_id: str, principal: Principal, body: str | None) -> dict[str, Any]:
    return service.other_action(body)


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return socket.handle(event, _default)
