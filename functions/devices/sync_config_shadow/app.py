"""SQS kumo-<stage>-config-shadow: write the config shadows that PUT
/api/v1/devices/{device_id}/config could not write at once."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import batch, metrics
from kumo.devices import shadow

logger = Logger()


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> batch.PartialFailures:
    # Each message names a device only; the shadow is written from the table as it is now.
    return batch.partial_failures(shadow.retry_batch(batch.records(event)))
