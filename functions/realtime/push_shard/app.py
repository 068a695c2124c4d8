"""SQS kumo-<stage>-fanout: post each queued shard of a big channel's fan-out to its
connections (kumo.realtime.shards)."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import batch, metrics
from kumo.realtime import shards

logger = Logger()


def _post(record: dict[str, Any]) -> None:
    shards.post_shard(str(record.get("body", "")))


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> batch.PartialFailures:
    return batch.partial_failures(
        batch.failed_message_ids(batch.records(event), _post, what="fan-out shard")
    )
