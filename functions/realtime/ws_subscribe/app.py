"""WebSocket `subscribe`: a device's readings, or an org's alerts or device status."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.chat import access
from kumo.core import metrics
from kumo.core.principal import Principal
from kumo.devices import service as devices
from kumo.realtime import service, socket
from kumo.realtime.schemas import SubscriptionMessage

logger = Logger()


def _subscribe(connection_id: str, principal: Principal, body: str | None) -> dict[str, Any]:
    message = service.parse(body, SubscriptionMessage)
    return service.subscribe(
        connection_id,
        principal,
        message,
        device_org=devices.viewable_device_org,
        chat_org=access.channel_org,
        sketch_org=access.sketch_org,
    )


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return socket.handle(event, _subscribe)
