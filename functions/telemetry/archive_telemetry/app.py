"""DynamoDB stream of kumo-<stage>-telemetry (TTL removals of raw items): archive to S3."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core import batch, metrics
from kumo.core.config import get_settings
from kumo.telemetry import archive

logger = Logger()


class ArchiveFailed(RuntimeError):
    """Some records were not archived and partial responses are off: retry the batch."""


@logger.inject_lambda_context
@metrics.flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> batch.PartialFailures:
    report = archive.archive_records(event.get("Records", []))
    if report.failed and not get_settings().stream_partial_failures:
        raise ArchiveFailed(f"{len(report.failed)} records not archived")
    # The stream resumes at the first failed record; objects are overwrites, so the records
    # after it that did succeed cost a repeated PUT, not a duplicate.
    return batch.partial_failures(report.failed)
