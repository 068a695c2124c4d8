"""SQS kumo-<stage>-telemetry (filled by the IoT topic rule): store the readings of a batch."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import batch, metrics
from kumo.telemetry import ingest

logger = Logger()


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> batch.PartialFailures:
    # Storage is one transaction per chunk and duplicates are no-ops, so a failure fails the
    # batch and SQS redelivers all of it; bad messages are dropped inside, never retried.
    ingest.ingest_records(event.get("Records", []))
    return batch.partial_failures(())
