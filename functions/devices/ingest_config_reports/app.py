"""SQS kumo-<stage>-config-reports (filled by the IoT topic rule on config shadow updates):
record the config versions devices report they applied."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import batch, metrics
from kumo.devices import shadow

logger = Logger()


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> batch.PartialFailures:
    # Refused and unreadable reports are dropped inside; only unexpected errors come back,
    # so SQS retries just those messages (and dead-letters them after five receives).
    return batch.partial_failures(shadow.ingest_reports(batch.records(event)))
