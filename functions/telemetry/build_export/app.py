"""SQS kumo-<stage>-exports: build the CSV file of each queued export."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import batch, metrics
from kumo.telemetry import csv_export

logger = Logger()


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> batch.PartialFailures:
    # Only failures that a retry may cure come back, so SQS redelivers just those messages
    # (three receives, then the dead-letter queue); the time left bounds each build.
    records = event.get("Records", [])
    return batch.partial_failures(
        csv_export.build_batch(records, context.get_remaining_time_in_millis)
    )
