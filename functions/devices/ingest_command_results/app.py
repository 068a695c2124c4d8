"""SQS kumo-<stage>-command-results (filled by the IoT topic rule): record devices' results."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import batch, metrics
from kumo.devices import commands

logger = Logger()


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> batch.PartialFailures:
    # Refused and unreadable results are dropped inside; only unexpected errors come back,
    # so SQS retries just those messages (and dead-letters them after five receives).
    return batch.partial_failures(commands.ingest_results(batch.records(event)))
