"""SQS batches with partial failures: every record handled on its own, the failed ones retried.

The one idiom of Kumo's queue consumers (the counterpart of kumo.core.api.http_handler): the
context's code handles one record, `failed_message_ids` runs it over the batch, and the handler
answers `partial_failures(...)`, the response a ReportBatchItemFailures mapping reads.

Not Powertools' BatchProcessor: the webhook worker waits on remote servers and runs a batch's
calls side by side (the processor runs records one after another), and contexts drop what a
retry would not change inside their handler, so they need only "raised or not" per record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypedDict

from aws_lambda_powertools import Logger

logger = Logger(child=True)


class ItemFailure(TypedDict):
    itemIdentifier: str


class PartialFailures(TypedDict):
    batchItemFailures: list[ItemFailure]


class Retry(Exception):
    """Raised by a record's handler for a record SQS should deliver again, the reason already
    logged (a webhook call to retry later, say): no stack trace is logged for it."""


def records(event: dict[str, Any]) -> list[dict[str, Any]]:
    return list(event.get("Records", []))


def failed_message_ids(
    records: Iterable[dict[str, Any]],
    handle: Callable[[dict[str, Any]], None],
    *,
    what: str,
    parallel: bool = False,
) -> list[str]:
    """Run `handle` on each record; the message ids of those that raised, for SQS to deliver
    again. `handle` drops (logs and returns) what a retry would not change. `parallel` runs
    the records side by side, for handlers that mostly wait on the network."""
    batch = list(records)

    def attempt(record: dict[str, Any]) -> str | None:
        message_id = str(record.get("messageId", ""))
        try:
            handle(record)
        except Retry:
            return message_id
        except Exception:
            logger.exception(f"{what} not recorded; SQS retries it", message_id=message_id)
            return message_id
        return None

    if parallel and len(batch) > 1:
        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            outcomes = list(pool.map(attempt, batch))
    else:
        outcomes = [attempt(record) for record in batch]
    return [message_id for message_id in outcomes if message_id is not None]


def partial_failures(failed: Sequence[str], *, batch_size: int | None = None) -> PartialFailures:
    """The answer SQS reads: the messages to deliver again. Given the `batch_size`, a batch in
    which every record failed fails the invocation instead, so it counts as a function error
    (what a consumer that wants an alarm on a systematic failure asks for)."""
    if batch_size and len(failed) == batch_size:
        # Powertools' own error, as its processor raises; imported here, as its package costs
        # a quarter of a second of cold start that the other consumers do not pay.
        from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

        raise BatchProcessingError(f"All {batch_size} records failed processing.")
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
