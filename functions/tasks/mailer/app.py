"""SQS kumo-<stage>-mail: deliver queued e-mails through SES, failing only the bad records."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import batch, metrics
from kumo.tasks import service

logger = Logger()


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> batch.PartialFailures:
    records = batch.records(event)
    failed = batch.failed_message_ids(records, service.deliver_record, what="e-mail")
    # A batch in which nothing could be sent fails the invocation: an alarm, not a retry only.
    return batch.partial_failures(failed, batch_size=len(records))
