"""WebSocket $connect: the authorizer admitted the caller; remember the connection (users only)."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import metrics
from kumo.core.errors import KumoError
from kumo.core.principal import Principal
from kumo.realtime import service

logger = Logger()


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event["requestContext"]
    try:
        principal = Principal.from_context(request.get("authorizer"))
        service.connect(request["connectionId"], principal)
    except KumoError as error:
        # A non-2xx answer refuses the handshake.
        logger.info("websocket connection refused", status=error.status, detail=error.detail)
        return {"statusCode": error.status}
    return {"statusCode": 200}
