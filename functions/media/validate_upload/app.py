"""SQS kumo-<stage>-media-uploads: judge each file uploaded to quarantine/ (ADR 28)."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import batch, metrics
from kumo.media import validator

logger = Logger()


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> batch.PartialFailures:
    # A failure a retry may cure (S3 or DynamoDB unreachable) comes back for SQS to deliver
    # again, five receives in all, then the dead-letter queue.
    return batch.partial_failures(
        batch.failed_message_ids(batch.records(event), validator.handle, what="upload judgement")
    )
