"""SQS kumo-<stage>-webhooks: call each queued webhook, failing only the records to retry."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.tasks import worker

logger = Logger()


def _attempt(record: dict[str, Any]) -> str | None:
    """The message id if the record must come back, else None."""
    try:
        job = worker.job_from_record(record)
    except (KeyError, TypeError, ValueError):
        # Kumo only queues ids it wrote; a body it cannot read no retry will fix.
        logger.exception("malformed webhook message dropped", message_id=record.get("messageId"))
        return None
    try:
        return record["messageId"] if worker.run_webhook(job) == "retry" else None
    except Exception:
        logger.exception("webhook attempt crashed", task_id=job.task_id, slot=job.slot)
        return str(record["messageId"])


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    # Calls wait on remote servers, so a batch runs them side by side.
    with ThreadPoolExecutor(max_workers=max(1, len(records))) as pool:
        failed = [message_id for message_id in pool.map(_attempt, records) if message_id]
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
