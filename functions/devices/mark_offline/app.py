"""EventBridge rate(1 minute): mark devices offline after their silence, announce each, and
count the devices still online (the DevicesOnline metric)."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import metrics
from kumo.devices import status

logger = Logger()


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    report = status.mark_silent_offline()
    return {
        "silent": report.silent,
        "marked_offline": report.marked_offline,
        "online": report.online,
    }
