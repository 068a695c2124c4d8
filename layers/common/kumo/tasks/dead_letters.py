"""Dead letters: look at what the mail and webhook queues gave up on, and send it back.

The dead-letter queues themselves are the record (docs/adr/0009-dead-letters.md): listing
receives messages with a short visibility timeout and releases them at once, so it is a
peek, not a page. Redrive sends a copy to the source queue, tagged `redrive_of` with the
original message id (which the webhook worker's slot claim still holds), then deletes it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from pynamodb.exceptions import DoesNotExist

from kumo.core import aws, clock
from kumo.core.config import get_settings
from kumo.tasks.models import RUN_PREFIX, RunModel, scheduled_key, task_key
from kumo.tasks.schemas import DeadLetterOut, DeadLetterQueue

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = Logger(child=True)

_PEEK_SECONDS = 30
_MAX_RECEIVES = 20


def _queues(queue: DeadLetterQueue) -> tuple[str, str]:
    """(source queue URL, dead-letter queue URL)."""
    settings = get_settings()
    if queue == "mail":
        return settings.mail_queue_url, settings.mail_dead_letter_url
    return settings.webhook_queue_url, settings.webhook_dead_letter_url


def _receive(dlq_url: str, wanted: int) -> list[MessageTypeDef]:
    seen: dict[str, MessageTypeDef] = {}
    for _ in range(_MAX_RECEIVES):
        if len(seen) >= wanted:
            break
        response = aws.sqs().receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, wanted - len(seen)),
            VisibilityTimeout=_PEEK_SECONDS,
            MessageSystemAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            break
        for message in messages:
            seen.setdefault(message["MessageId"], message)
    return list(seen.values())


def _release(dlq_url: str, messages: list[MessageTypeDef]) -> None:
    for start in range(0, len(messages), 10):
        aws.sqs().change_message_visibility_batch(
            QueueUrl=dlq_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages[start : start + 10])
            ],
        )


def _body(message: MessageTypeDef) -> dict[str, Any]:
    try:
        body = json.loads(message.get("Body", ""))
    except ValueError:
        return {"raw": message.get("Body", "")[:512]}
    return body if isinstance(body, dict) else {"raw": body}


def _last_error(queue: DeadLetterQueue, body: dict[str, Any]) -> str | None:
    task_id = body.get("task_id")
    if queue == "mail" or not isinstance(task_id, str):
        return None
    slot = str(body.get("slot", "once"))
    once = body.get("trigger", "once") == "once"
    partition = task_key(task_id) if once else scheduled_key(task_id)
    try:
        runs = RunModel.query(
            partition,
            RunModel.sk.startswith(f"{RUN_PREFIX}{slot}#"),
            scan_index_forward=False,
            limit=1,
        )
        last = next(iter(runs), None)
    except DoesNotExist:
        return None
    if last is None:
        return None
    return last.error or (f"HTTP {int(last.status_code)}" if last.status_code else None)


def _out(queue: DeadLetterQueue, message: MessageTypeDef) -> DeadLetterOut:
    attributes = message.get("Attributes", {})
    sent = attributes.get("SentTimestamp")
    body = _body(message)
    task_id = body.get("task_id")
    return DeadLetterOut(
        message_id=message["MessageId"],
        queue=queue,
        body=body,
        sent_at=clock.utc_iso(int(sent) / 1000) if sent else None,
        receive_count=int(attributes.get("ApproximateReceiveCount", "0")),
        task_id=task_id if isinstance(task_id, str) else None,
        last_error=_last_error(queue, body),
    )


def approximate_total(queue: DeadLetterQueue) -> int:
    attributes = aws.sqs().get_queue_attributes(
        QueueUrl=_queues(queue)[1],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", "0")) + int(
        attributes.get("ApproximateNumberOfMessagesNotVisible", "0")
    )


def list_dead_letters(queue: DeadLetterQueue, limit: int) -> list[DeadLetterOut]:
    dlq_url = _queues(queue)[1]
    messages = _receive(dlq_url, limit)
    try:
        return [_out(queue, message) for message in messages]
    finally:
        _release(dlq_url, messages)


def redrive(
    queue: DeadLetterQueue, *, message_ids: list[str] | None, limit: int
) -> tuple[list[str], list[str]]:
    """Move the chosen (or the first `limit`) messages back; returns (moved, not found)."""
    source_url, dlq_url = _queues(queue)
    wanted = set(message_ids) if message_ids is not None else None
    messages = _receive(dlq_url, limit if wanted is None else 100)
    chosen = [m for m in messages if wanted is None or m["MessageId"] in wanted][:limit]
    moved: list[str] = []
    try:
        for message in chosen:
            body = _body(message)
            body["redrive_of"] = message["MessageId"]
            aws.sqs().send_message(QueueUrl=source_url, MessageBody=json.dumps(body))
            aws.sqs().delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved.append(message["MessageId"])
    finally:
        _release(dlq_url, [m for m in messages if m["MessageId"] not in moved])
    missing = sorted(wanted - set(moved)) if wanted is not None else []
    logger.info("dead letters redriven", queue=queue, moved=len(moved), missing=len(missing))
    return moved, missing
