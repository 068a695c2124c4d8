"""EventBridge rate(1 minute): queue every due scheduled task and advance its next run."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.tasks import tick

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    report = tick.enqueue_due_tasks()
    return {"due": report.due, "queued": report.queued, "advanced": report.advanced}
