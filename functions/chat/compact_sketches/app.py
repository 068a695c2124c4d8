"""SQS kumo-<stage>-sketch-compaction: write each full segment of a sketch's operations to S3
(kumo.chat.segments)."""

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.chat import segments
from kumo.core import batch, metrics

logger = Logger()


def _compact(record: dict[str, Any]) -> None:
    try:
        sketch_id = str(json.loads(record.get("body") or "{}")["sketch_id"])
    except (ValueError, KeyError, TypeError):
        logger.warning("not a compaction request; dropped", message_id=record.get("messageId"))
        return
    segments.compact(sketch_id)


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> batch.PartialFailures:
    return batch.partial_failures(
        batch.failed_message_ids(batch.records(event), _compact, what="sketch compaction")
    )
