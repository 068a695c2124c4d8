"""SQS batches with partial failures: every record handled on its own, the failed ones retried."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypedDict

from aws_lambda_powertools import Logger

logger = Logger(child=True)


class PartialResponse(TypedDict):
    """Powertools' PartialItemFailureResponse, without importing its batch package (tens of
    milliseconds of a consumer's cold start)."""

    batchItemFailures: list[dict[str, str]]


def failed_message_ids(
    records: Iterable[dict[str, Any]], handle: Callable[[dict[str, Any]], None], *, what: str
) -> list[str]:
    """Run `handle` on each record; the message ids of those that raised, for SQS to deliver
    again. `handle` drops (logs and returns) what a retry would not change."""
    failed: list[str] = []
    for record in records:
        message_id = str(record.get("messageId", ""))
        try:
            handle(record)
        except Exception:
            logger.exception(f"{what} not recorded; SQS retries it", message_id=message_id)
            failed.append(message_id)
    return failed


def partial_response(failed: Iterable[str]) -> PartialResponse:
    """What a batch consumer answers (ReportBatchItemFailures): the records to deliver again,
    by SQS message id or, for a DynamoDB stream, by sequence number."""
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
