"""EventBridge rate(1 minute): tell the channels of users whose heartbeat ran out that they
are offline (a lost $disconnect leaves no one online)."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.chat import presence
from kumo.core import metrics

logger = Logger()


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    return {"offline": presence.sweep()}
