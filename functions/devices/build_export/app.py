"""SQS kumo-<stage>-exports: build the CSV file of each queued export."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import metrics
from kumo.devices import exports

logger = Logger()


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Only failures that a retry may cure come back, so SQS redelivers just those messages
    # (three receives, then the dead-letter queue); the time left bounds each build.
    failed = exports.build_batch(event.get("Records", []), context.get_remaining_time_in_millis)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
