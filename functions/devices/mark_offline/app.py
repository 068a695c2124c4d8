"""EventBridge rate(1 minute): mark devices offline after their silence; announce each."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.devices import status

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    report = status.mark_silent_offline()
    return {"silent": report.silent, "marked_offline": report.marked_offline}
