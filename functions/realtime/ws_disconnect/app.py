"""WebSocket $disconnect: forget the connection and its subscriptions."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import metrics
from kumo.realtime import service

logger = Logger()


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service.disconnect(event["requestContext"]["connectionId"])
    return {"statusCode": 200}
