"""SQS kumo-<stage>-webhooks: call each queued webhook, failing only the records to retry."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import batch, metrics
from kumo.tasks import worker

logger = Logger()


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> batch.PartialFailures:
    return batch.partial_failures(worker.run_batch(batch.records(event)))
