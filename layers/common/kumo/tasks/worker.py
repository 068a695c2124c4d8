"""The webhook worker: claim the slot, call the URL, log the attempt, decide retry or not.

Exactly-once per slot on an at-least-once queue: the first message to claim a slot owns it
(its message id is stored in the claim); a second message for the same slot, from an
overlapping tick or a duplicate delivery, finds another id and is dropped. The owning
message may come back (retries), and so may a redriven copy of it (`redrive_of`).
Retries use the message's own visibility timeout as the backoff; after the last attempt
the message is left to the queue's redrive policy, which moves it to the dead-letter queue.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Literal

from aws_lambda_powertools import Logger
from pynamodb.exceptions import DoesNotExist, UpdateError

from kumo.core import aws, batch, clock, metrics
from kumo.core.config import get_settings
from kumo.tasks import webhook
from kumo.tasks.models import (
    META,
    RunModel,
    ScheduledTaskModel,
    SlotClaimModel,
    WebhookTaskModel,
    run_key,
    scheduled_key,
    slot_key,
    task_key,
)

logger = Logger(child=True)

LOG_RETENTION_SECONDS = 30 * 24 * 3600
MAX_BACKOFF_SECONDS = 900
ONCE = "once"

Verdict = Literal["done", "retry"]


@dataclass(frozen=True, slots=True)
class WebhookJob:
    """One SQS message: ids only, plus what SQS says about its delivery."""

    task_id: str
    slot: str
    trigger: str
    message_id: str
    receipt_handle: str
    receive_count: int
    redrive_of: str | None = None

    @property
    def partition(self) -> str:
        return task_key(self.task_id) if self.trigger == ONCE else scheduled_key(self.task_id)


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    method: str
    headers: dict[str, str]
    body: bytes | None
    secret: str
    paused: bool


def job_from_record(record: dict[str, Any]) -> WebhookJob:
    body = json.loads(record["body"])
    return WebhookJob(
        task_id=str(body["task_id"]),
        slot=str(body.get("slot", ONCE)),
        trigger=str(body.get("trigger", ONCE)),
        message_id=record["messageId"],
        receipt_handle=record["receiptHandle"],
        receive_count=int(record.get("attributes", {}).get("ApproximateReceiveCount", "1")),
        redrive_of=body.get("redrive_of"),
    )


def backoff_seconds(receive_count: int) -> int:
    """Exponential with equal jitter: never shorter than half the step, so gaps keep growing."""
    base = get_settings().webhook_backoff_seconds
    step: int = min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, receive_count - 1))
    return max(1, round(step / 2 + random.uniform(0, step / 2)))  # noqa: S311 (not crypto)


def _claim(job: WebhookJob) -> int | None:
    """Take the slot for this message; returns the attempt number, or None if not ours."""
    claim = SlotClaimModel(job.partition, slot_key(job.slot))
    ours = (SlotClaimModel.message_id == job.message_id) & SlotClaimModel.status.is_in(
        "running", "retrying"
    )
    condition = SlotClaimModel.pk.does_not_exist() | ours
    if job.redrive_of:
        condition = condition | (
            (SlotClaimModel.message_id == job.redrive_of) & (SlotClaimModel.status == "failed")
        )
    try:
        claim.update(
            actions=[
                SlotClaimModel.message_id.set(job.message_id),
                SlotClaimModel.status.set("running"),
                SlotClaimModel.attempts.add(1),
                SlotClaimModel.trigger.set(job.trigger),
                SlotClaimModel.updated_at.set(clock.utc_iso()),
                SlotClaimModel.expires_at.set(int(clock.now()) + LOG_RETENTION_SECONDS),
            ],
            condition=condition,
        )
    except UpdateError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return None
        raise
    return int(claim.attempts)


def _settle(job: WebhookJob, status: str) -> None:
    SlotClaimModel(job.partition, slot_key(job.slot)).update(
        actions=[
            SlotClaimModel.status.set(status),
            SlotClaimModel.updated_at.set(clock.utc_iso()),
        ]
    )


def _load_target(job: WebhookJob) -> Target | None:
    try:
        if job.trigger == ONCE:
            once = WebhookTaskModel.get(task_key(job.task_id), "TASK")
            return Target(
                once.url,
                once.method,
                json.loads(once.headers_json),
                once.body_json.encode() if once.body_json else None,
                once.secret,
                paused=False,
            )
        task = ScheduledTaskModel.get(scheduled_key(job.task_id), META)
    except DoesNotExist:
        return None
    return Target(
        task.url,
        task.method,
        json.loads(task.headers_json),
        task.body_json.encode() if task.body_json else None,
        task.secret,
        paused=task.status == "paused",
    )


def _record(job: WebhookJob, attempt: int, started_at: str, result: webhook.DeliveryResult) -> None:
    RunModel(
        job.partition,
        run_key(job.slot, attempt),
        slot=job.slot,
        trigger=job.trigger,
        attempt=attempt,
        started_at=started_at,
        duration_ms=result.duration_ms,
        outcome=result.outcome,
        status_code=result.status_code,
        error=result.error,
        excerpt=result.excerpt,
        expires_at=int(clock.now()) + LOG_RETENTION_SECONDS,
    ).save()


def _summarise(job: WebhookJob, outcome: str) -> None:
    """The task's last outcome, for list views; a deleted task has nothing to update."""
    try:
        if job.trigger == ONCE:
            WebhookTaskModel(task_key(job.task_id), "TASK").update(
                actions=[WebhookTaskModel.status.set(outcome)],
                condition=WebhookTaskModel.pk.exists(),
            )
        else:
            ScheduledTaskModel(scheduled_key(job.task_id), META).update(
                actions=[
                    ScheduledTaskModel.last_run_at.set(clock.utc_iso()),
                    ScheduledTaskModel.last_outcome.set(outcome),
                ],
                condition=ScheduledTaskModel.pk.exists(),
            )
    except UpdateError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise


def _delay_next_attempt(job: WebhookJob, seconds: int) -> None:
    aws.sqs().change_message_visibility(
        QueueUrl=get_settings().webhook_queue_url,
        ReceiptHandle=job.receipt_handle,
        VisibilityTimeout=seconds,
    )


def run_webhook(job: WebhookJob) -> Verdict:
    """One delivery attempt. "retry" leaves the message on the queue (a batch item failure)."""
    attempt = _claim(job)
    if attempt is None:
        logger.info("slot already claimed; duplicate dropped", task_id=job.task_id, slot=job.slot)
        return "done"
    target = _load_target(job)
    if target is None or (target.paused and job.trigger == "schedule"):
        _settle(job, "skipped")
        logger.info("run skipped", task_id=job.task_id, slot=job.slot, deleted=target is None)
        return "done"

    settings = get_settings()
    started_at = clock.utc_iso()
    result = webhook.deliver(
        url=target.url,
        method=target.method,
        headers=target.headers,
        body=target.body,
        secret=target.secret,
        delivery_id=f"{job.task_id}:{job.slot}",
        attempt=attempt,
        timeout=settings.webhook_timeout_seconds,
        allow_loopback=settings.webhook_allow_loopback,
    )
    _record(job, attempt, started_at, result)
    logger.info(
        "webhook attempt",
        task_id=job.task_id,
        slot=job.slot,
        attempt=attempt,
        outcome=result.outcome,
        status_code=result.status_code,
        error=result.error,
        duration_ms=result.duration_ms,
    )
    if result.outcome != "retry":
        _settle(job, result.outcome)
        _summarise(job, result.outcome)
        succeeded = result.outcome == "succeeded"
        metrics.count(metrics.WEBHOOKS_SUCCEEDED if succeeded else metrics.WEBHOOKS_FAILED)
        return "done"
    if job.receive_count >= settings.webhook_max_attempts:
        # The redrive policy moves the message on its next receive: make that now.
        _settle(job, "failed")
        _summarise(job, "failed")
        _delay_next_attempt(job, 0)
        metrics.count(metrics.WEBHOOKS_FAILED)
        logger.warning("webhook dead-lettered", task_id=job.task_id, slot=job.slot)
        return "retry"
    _settle(job, "retrying")
    _delay_next_attempt(job, backoff_seconds(job.receive_count))
    metrics.count(metrics.WEBHOOKS_RETRIED)
    return "retry"


def _attempt(record: dict[str, Any]) -> None:
    """One record; raises batch.Retry when it must come back."""
    try:
        job = job_from_record(record)
    except (KeyError, TypeError, ValueError):
        # Kumo only queues ids it wrote; a body it cannot read no retry will fix.
        logger.exception("malformed webhook message dropped", message_id=record.get("messageId"))
        return
    try:
        outcome = run_webhook(job)
    except Exception as error:
        logger.exception("webhook attempt crashed", task_id=job.task_id, slot=job.slot)
        raise batch.Retry from error
    if outcome == "retry":
        raise batch.Retry


def run_batch(records: list[dict[str, Any]]) -> list[str]:
    """Every record of an SQS batch; the message ids to retry (partial batch failures)."""
    # Calls wait on remote servers, so a batch runs them side by side.
    return batch.failed_message_ids(records, _attempt, what="webhook attempt", parallel=True)
