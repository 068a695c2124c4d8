"""SQS kumo-<stage>-mail: deliver queued e-mails through SES, failing only the bad records."""

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import metrics
from kumo.tasks import service

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS)


def deliver(record: SQSRecord) -> None:
    service.deliver_email(json.loads(record.body)["task_id"])


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=deliver, processor=processor, context=context
    )
