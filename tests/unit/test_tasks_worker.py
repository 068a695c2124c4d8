"""The webhook worker: one claimed slot, one signed call, a logged attempt, retry or not."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from kumo.core import clock
from kumo.core.config import get_settings
from kumo.core.ids import new_id
from kumo.tasks import scheduled_tasks, service, worker
from kumo.tasks.models import (
    RUN_PREFIX,
    RunModel,
    ScheduledTaskModel,
    SlotClaimModel,
    WebhookTaskModel,
    scheduled_key,
    slot_key,
    task_key,
)
from kumo.tasks.schemas import CreateScheduledTaskRequest, UpdateScheduledTaskRequest

from infra.local.receiver import Receiver
from tests.unit.conftest import WEBHOOK_QUEUE_URL, FakeContext, load_handler

SLOT = "2090-01-01T10:05:00.000Z"
FAR_FUTURE = "0 0 1 1 *"


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Change settings for one test; the cache is cleared again before the env is restored."""

    def apply(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()


@pytest.fixture
def loopback(configure: Callable[..., None]) -> None:
    """Calls to 127.0.0.1 allowed, as on the local stack."""
    configure(WEBHOOK_ALLOW_LOOPBACK="true")


@pytest.fixture
def receiver(loopback: None, aws: None) -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def create_task(
    receiver: Receiver, path: str = "/hook", owner_id: str | None = None, **fields: Any
) -> tuple[ScheduledTaskModel, str]:
    """A scheduled task calling the receiver; answers it and its signing secret."""
    fields = {"name": "worker", "schedule": FAR_FUTURE, **fields}
    request = CreateScheduledTaskRequest(url=f"{receiver.base}{path}", **fields)
    return scheduled_tasks.create_task(owner_id=owner_id or new_id(), request=request)


def receive_record(*, receive_count: int = 1, visibility: int = 30) -> dict[str, Any]:
    """The one message on the webhook queue as an SQS event record (a real receipt handle)."""
    (message,) = (
        boto3.client("sqs")
        .receive_message(QueueUrl=WEBHOOK_QUEUE_URL, VisibilityTimeout=visibility)
        .get("Messages", [])
    )
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {"ApproximateReceiveCount": str(receive_count)},
        "eventSource": "aws:sqs",
    }


def queued_record(
    task_id: str, slot: str = SLOT, trigger: str = "schedule", **kwargs: Any
) -> dict[str, Any]:
    scheduled_tasks.send_run(task_id=task_id, slot=slot, trigger=trigger)
    return receive_record(**kwargs)


def handle(*records: dict[str, Any]) -> list[str]:
    """Run the worker function on a batch; answers the message ids it reports as failed."""
    result = load_handler("tasks/webhook_worker").lambda_handler(
        {"Records": list(records)}, FakeContext()
    )
    return [failure["itemIdentifier"] for failure in result["batchItemFailures"]]


def runs(task_id: str, *, once: bool = False) -> list[RunModel]:
    """The task's logged attempts, oldest first."""
    partition = task_key(task_id) if once else scheduled_key(task_id)
    return list(RunModel.query(partition, RunModel.sk.startswith(RUN_PREFIX)))


def claim(task_id: str, slot: str = SLOT, *, once: bool = False) -> SlotClaimModel:
    partition = task_key(task_id) if once else scheduled_key(task_id)
    return SlotClaimModel.get(partition, slot_key(slot))


def stored(task_id: str) -> ScheduledTaskModel:
    return ScheduledTaskModel.get(scheduled_key(task_id), "META")


def visible_messages() -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (
        boto3.client("sqs")
        .receive_message(QueueUrl=WEBHOOK_QUEUE_URL, MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return messages


# --- a delivery that succeeds -------------------------------------------------------------


def test_webhook_worker_logs_successful_run(receiver):
    # Given a task calling a receiver that answers 200, and its queued slot
    task, _ = create_task(receiver)
    record = queued_record(task.task_id)

    # When the worker handles the message
    failed = handle(record)

    # Then the call is made once and attempt 1 is logged as succeeded with the answer
    assert failed == []
    assert len(receiver.calls_to("/hook")) == 1
    (run,) = runs(task.task_id)
    assert (run.slot, run.trigger, int(run.attempt), run.outcome) == (
        SLOT,
        "schedule",
        1,
        "succeeded",
    )
    assert (int(run.status_code), run.error) == (200, None)
    assert json.loads(run.excerpt) == {"received": True}


def test_webhook_worker_marks_task_last_outcome(receiver):
    # Given a task whose slot is queued
    task, _ = create_task(receiver)
    record = queued_record(task.task_id)

    # When the worker delivers it
    handle(record)

    # Then the task shows the outcome and when it ran, and the claim is settled
    after = stored(task.task_id)
    assert after.last_outcome == "succeeded"
    assert after.last_run_at is not None
    assert claim(task.task_id).status == "succeeded"


def test_webhook_worker_signs_call_with_task_secret(receiver):
    # Given a task with a body and the secret shown at its creation
    task, secret = create_task(receiver, body={"report": "daily"})
    record = queued_record(task.task_id)

    # When the worker delivers it
    handle(record)

    # Then the receiver verifies the signature with that secret, over the exact body
    (call,) = receiver.calls_to("/hook")
    assert call.signature_valid(secret)
    assert not call.signature_valid(scheduled_tasks.webhook.new_secret())
    assert json.loads(call.body) == {"report": "daily"}
    assert call.header("Kumo-Delivery") == f"{task.task_id}:{SLOT}"
    assert call.header("Kumo-Attempt") == "1"


def test_webhook_worker_signs_with_rotated_secret(receiver):
    # Given a task whose secret was rotated after creation
    owner = new_id()
    task, old_secret = create_task(receiver, owner_id=owner)
    new_secret = scheduled_tasks.rotate_secret(owner_id=owner, task_id=task.task_id)
    record = queued_record(task.task_id)

    # When the worker delivers it
    handle(record)

    # Then the call is signed with the new secret only
    (call,) = receiver.calls_to("/hook")
    assert call.signature_valid(new_secret)
    assert not call.signature_valid(old_secret)


def test_webhook_worker_sends_task_method_and_headers(receiver):
    # Given a PUT task with a custom header
    task, _ = create_task(receiver, method="PUT", headers={"X-Team": "ops"})
    record = queued_record(task.task_id)

    # When the worker delivers it
    handle(record)

    # Then the call uses them
    (call,) = receiver.calls_to("/hook")
    assert (call.method, call.header("X-Team")) == ("PUT", "ops")


# --- answers that retry or fail -----------------------------------------------------------


def test_webhook_worker_reports_500_for_retry(receiver):
    # Given a task whose receiver answers 500
    task, _ = create_task(receiver, path="/hook/status/500")
    record = queued_record(task.task_id)

    # When the worker handles it
    failed = handle(record)

    # Then the message is reported back for a retry, the claim waits, the attempt is logged
    assert failed == [record["messageId"]]
    assert claim(task.task_id).status == "retrying"
    (run,) = runs(task.task_id)
    assert (run.outcome, int(run.status_code), run.error) == ("retry", 500, "http 500")


def test_webhook_worker_delays_retry_with_visibility_backoff(receiver):
    # Given a 500 receiver and its message received visible again at once (timeout 0)
    task, _ = create_task(receiver, path="/hook/status/500")
    record = queued_record(task.task_id, visibility=0)

    # When the worker handles it
    handle(record)

    # Then the message's visibility was pushed out: it is not receivable right away
    assert visible_messages() == []


def test_webhook_worker_runs_next_attempt_of_same_message(receiver):
    # Given a first attempt that got a 500, then a receiver that recovered
    task, _ = create_task(receiver, path="/hook/status/500")
    record = queued_record(task.task_id)
    handle(record)
    receiver.respond("/hook/status/500", 200)

    # When the same message comes back for its second receive
    retry = record | {"attributes": {"ApproximateReceiveCount": "2"}}
    failed = handle(retry)

    # Then it runs as attempt 2 and succeeds
    assert failed == []
    assert [int(run.attempt) for run in runs(task.task_id)] == [1, 2]
    assert runs(task.task_id)[-1].outcome == "succeeded"
    assert receiver.calls_to("/hook/status/500")[-1].header("Kumo-Attempt") == "2"
    assert claim(task.task_id).status == "succeeded"


def test_webhook_worker_does_not_retry_400(receiver):
    # Given a task whose receiver answers 400
    task, _ = create_task(receiver, path="/hook/status/400")
    record = queued_record(task.task_id)

    # When the worker handles it
    failed = handle(record)

    # Then it is not reported for a retry: the run and the task failed
    assert failed == []
    (run,) = runs(task.task_id)
    assert (run.outcome, int(run.status_code)) == ("failed", 400)
    assert claim(task.task_id).status == "failed"
    assert stored(task.task_id).last_outcome == "failed"


def test_webhook_worker_last_attempt_fails_task_and_releases_message_to_dlq(receiver):
    # Given a 500 receiver and a message on its last allowed receive
    task, _ = create_task(receiver, path="/hook/status/500")
    last = get_settings().webhook_max_attempts
    record = queued_record(task.task_id, receive_count=last)

    # When the worker handles it
    failed = handle(record)

    # Then it is reported (so the redrive policy moves it), the claim and the task failed,
    # and the message is visible again at once for that move
    assert failed == [record["messageId"]]
    assert claim(task.task_id).status == "failed"
    assert stored(task.task_id).last_outcome == "failed"
    assert [message["MessageId"] for message in visible_messages()] == [record["messageId"]]


def test_webhook_worker_honours_configured_max_attempts(receiver, configure):
    # Given at most two attempts, and a 500 receiver on the second receive
    configure(WEBHOOK_MAX_ATTEMPTS="2")
    task, _ = create_task(receiver, path="/hook/status/503")
    record = queued_record(task.task_id)
    handle(record)

    # When the second attempt fails too
    handle(record | {"attributes": {"ApproximateReceiveCount": "2"}})

    # Then the claim failed for good
    assert claim(task.task_id).status == "failed"
    assert [run.outcome for run in runs(task.task_id)] == ["retry", "retry"]


# --- exactly once per slot ----------------------------------------------------------------


def test_webhook_worker_drops_second_message_for_claimed_slot(receiver):
    # Given two messages for the same task and slot (an overlapping tick)
    task, _ = create_task(receiver)
    first = queued_record(task.task_id)
    second = queued_record(task.task_id)
    assert first["messageId"] != second["messageId"]

    # When the worker handles both, one after the other
    failed = handle(first) + handle(second)

    # Then the receiver is called once, and the duplicate is not retried
    assert failed == []
    assert len(receiver.calls_to("/hook")) == 1
    assert len(runs(task.task_id)) == 1


def test_webhook_worker_drops_duplicate_even_while_owner_retries(receiver):
    # Given a slot whose owning message is waiting for a retry
    task, _ = create_task(receiver, path="/hook/status/500")
    handle(queued_record(task.task_id))
    duplicate = queued_record(task.task_id)

    # When a second message for the slot arrives
    failed = handle(duplicate)

    # Then it is dropped without a call
    assert failed == []
    assert len(receiver.calls_to("/hook/status/500")) == 1


def test_webhook_worker_runs_same_slot_for_different_triggers_separately(receiver):
    # Given a scheduled slot and a manual run of the same task
    task, _ = create_task(receiver)
    handle(queued_record(task.task_id, slot=SLOT))

    # When a run-now for another slot arrives
    failed = handle(queued_record(task.task_id, slot="2090-01-01T10:06:12.345Z", trigger="manual"))

    # Then both are delivered
    assert failed == []
    assert len(receiver.calls_to("/hook")) == 2


def test_webhook_worker_runs_manual_run_made_on_a_scheduled_minute(receiver, monkeypatch):
    # Given a run-now requested at exactly 10:05:00.000, the minute the schedule also fires
    owner = new_id()
    task, _ = create_task(receiver, owner_id=owner, schedule="*/5 * * * *")
    monkeypatch.setattr(clock, "now", lambda: datetime(2090, 1, 1, 10, 5, tzinfo=UTC).timestamp())
    scheduled_tasks.run_now(owner_id=owner, task_id=task.task_id)
    manual = receive_record()
    scheduled_slot = queued_record(task.task_id, slot=SLOT, trigger="schedule")

    # When the worker handles both
    failed = handle(manual) + handle(scheduled_slot)

    # Then both runs happen, each under its own delivery id and in its own log entry
    assert failed == []
    calls = receiver.calls_to("/hook")
    assert len(calls) == 2
    assert len({call.header("Kumo-Delivery") for call in calls}) == 2
    assert sorted(run.trigger for run in runs(task.task_id)) == ["manual", "schedule"]


def test_webhook_worker_allows_redelivery_of_crashed_message(receiver):
    # Given a message whose first attempt claimed the slot and then crashed (status running)
    task, _ = create_task(receiver)
    record = queued_record(task.task_id)
    assert worker._claim(worker.job_from_record(record)) == 1

    # When SQS delivers the same message again
    failed = handle(record | {"attributes": {"ApproximateReceiveCount": "2"}})

    # Then it is allowed to run, as the next attempt
    assert failed == []
    (call,) = receiver.calls_to("/hook")
    assert call.header("Kumo-Attempt") == "2"
    assert int(claim(task.task_id).attempts) == 2


def test_webhook_worker_allows_redriven_copy_and_continues_attempts(receiver):
    # Given a slot whose message failed for good (claim failed) and went to the DLQ
    task, _ = create_task(receiver, path="/hook/status/500")
    last = get_settings().webhook_max_attempts
    original = queued_record(task.task_id, receive_count=last)
    handle(original)
    assert claim(task.task_id).status == "failed"
    receiver.respond("/hook/status/500", 200)

    # When an admin redrives it: a new message tagged with the original id
    body = json.loads(original["body"]) | {"redrive_of": original["messageId"]}
    boto3.client("sqs").send_message(QueueUrl=WEBHOOK_QUEUE_URL, MessageBody=json.dumps(body))
    boto3.client("sqs").delete_message(
        QueueUrl=WEBHOOK_QUEUE_URL, ReceiptHandle=original["receiptHandle"]
    )
    redriven = receive_record()
    failed = handle(redriven)

    # Then it runs, its attempt number continues, and the claim now belongs to the copy
    assert failed == []
    assert receiver.calls_to("/hook/status/500")[-1].header("Kumo-Attempt") == "2"
    assert [int(run.attempt) for run in runs(task.task_id)] == [1, 2]
    after = claim(task.task_id)
    assert (after.status, int(after.attempts), after.message_id) == (
        "succeeded",
        2,
        redriven["messageId"],
    )


def test_webhook_worker_drops_redrive_of_another_message(receiver):
    # Given a failed slot, and a copy claiming to redrive some other message
    task, _ = create_task(receiver, path="/hook/status/500")
    original = queued_record(task.task_id, receive_count=get_settings().webhook_max_attempts)
    handle(original)
    boto3.client("sqs").delete_message(
        QueueUrl=WEBHOOK_QUEUE_URL, ReceiptHandle=original["receiptHandle"]
    )
    body = json.loads(original["body"]) | {"redrive_of": "not-the-owner"}
    boto3.client("sqs").send_message(QueueUrl=WEBHOOK_QUEUE_URL, MessageBody=json.dumps(body))

    # When the worker handles it
    failed = handle(receive_record())

    # Then it is dropped without a call
    assert failed == []
    assert len(receiver.calls_to("/hook/status/500")) == 1


def test_webhook_worker_drops_redrive_while_slot_is_not_failed(receiver):
    # Given a slot that succeeded, and a redrive-tagged copy of its message
    task, _ = create_task(receiver)
    original = queued_record(task.task_id)
    handle(original)
    body = json.loads(original["body"]) | {"redrive_of": original["messageId"]}
    boto3.client("sqs").send_message(QueueUrl=WEBHOOK_QUEUE_URL, MessageBody=json.dumps(body))

    # When the worker handles the copy
    failed = handle(receive_record())

    # Then the succeeded slot is not run again
    assert failed == []
    assert len(receiver.calls_to("/hook")) == 1


# --- tasks that changed since the slot was queued -----------------------------------------


def test_webhook_worker_skips_scheduled_slot_of_paused_task(receiver):
    # Given a queued scheduled slot of a task paused since
    owner = new_id()
    task, _ = create_task(receiver, owner_id=owner)
    record = queued_record(task.task_id)
    scheduled_tasks.update_task(
        owner_id=owner, task_id=task.task_id, request=UpdateScheduledTaskRequest(paused=True)
    )

    # When the worker handles it
    failed = handle(record)

    # Then no call is made, nothing is logged, and the claim is skipped
    assert failed == []
    assert receiver.calls == []
    assert runs(task.task_id) == []
    assert claim(task.task_id).status == "skipped"


def test_webhook_worker_runs_manual_slot_of_paused_task(receiver):
    # Given a paused task run by hand
    owner = new_id()
    task, _ = create_task(receiver, owner_id=owner, paused=True)
    slot = scheduled_tasks.run_now(owner_id=owner, task_id=task.task_id)
    record = receive_record()

    # When the worker handles the manual run
    failed = handle(record)

    # Then the call is made and logged as manual
    assert failed == []
    assert len(receiver.calls_to("/hook")) == 1
    (run,) = runs(task.task_id)
    assert (run.slot, run.trigger, run.outcome) == (slot, "manual", "succeeded")


def test_webhook_worker_skips_deleted_task(receiver):
    # Given a queued slot of a task deleted since
    owner = new_id()
    task, _ = create_task(receiver, owner_id=owner)
    record = queued_record(task.task_id)
    scheduled_tasks.delete_task(owner_id=owner, task_id=task.task_id)

    # When the worker handles it
    failed = handle(record)

    # Then no call is made, nothing fails, and the task is not recreated
    assert failed == []
    assert receiver.calls == []
    assert claim(task.task_id).status == "skipped"
    assert list(ScheduledTaskModel.scan(ScheduledTaskModel.sk == "META")) == []


def test_webhook_worker_uses_task_as_it_is_at_delivery(receiver):
    # Given a queued slot, then the task's URL changed
    owner = new_id()
    task, _ = create_task(receiver, path="/before", owner_id=owner)
    record = queued_record(task.task_id)
    scheduled_tasks.update_task(
        owner_id=owner,
        task_id=task.task_id,
        request=UpdateScheduledTaskRequest(url=f"{receiver.base}/after"),
    )

    # When the worker handles the slot
    handle(record)

    # Then it calls the current URL (the message carries ids only)
    assert [call.path for call in receiver.calls] == ["/after"]


# --- messages the worker cannot read ------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["not json", json.dumps({"slot": SLOT}), json.dumps([1, 2]), json.dumps("task")],
    ids=["not-json", "no-task-id", "array", "string"],
)
def test_webhook_worker_drops_malformed_message(receiver, body):
    # Given a message whose body is not a job
    record = {
        "messageId": new_id(),
        "receiptHandle": "unused",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
    }

    # When the worker handles it
    failed = handle(record)

    # Then it is dropped, not retried, and nothing is called
    assert failed == []
    assert receiver.calls == []


def test_webhook_worker_fails_only_the_bad_record_of_a_batch(receiver):
    # Given a batch of one good slot and one slot whose receiver answers 500
    good, _ = create_task(receiver, path="/good")
    bad, _ = create_task(receiver, path="/bad/status/500")
    good_record = queued_record(good.task_id)
    bad_record = queued_record(bad.task_id)

    # When the worker handles the batch
    failed = handle(good_record, bad_record)

    # Then only the bad record is reported
    assert failed == [bad_record["messageId"]]


def test_webhook_worker_reports_crashed_attempt_for_retry(receiver, monkeypatch):
    # Given a slot whose attempt raises unexpectedly (DynamoDB down, say)
    task, _ = create_task(receiver)
    record = queued_record(task.task_id)

    def broken(job: worker.WebhookJob) -> worker.Verdict:
        raise RuntimeError("boom")

    monkeypatch.setattr(worker, "run_webhook", broken)

    # When the worker handles it
    failed = handle(record)

    # Then the message is reported so SQS delivers it again
    assert failed == [record["messageId"]]


# --- one-off webhooks ---------------------------------------------------------------------


def test_webhook_worker_delivers_one_off_webhook_with_trigger_once(receiver):
    # Given a one-off webhook queued through the tasks service
    task_id, secret = service.enqueue_webhook(
        url=f"{receiver.base}/once",
        method="POST",
        headers={},
        body={"event": "device.offline"},
        created_by=new_id(),
    )
    record = receive_record()
    assert json.loads(record["body"]) == {"task_id": task_id, "slot": "once", "trigger": "once"}

    # When the worker handles it
    failed = handle(record)

    # Then the call is signed with its secret, logged under the one-off task, marked done
    assert failed == []
    (call,) = receiver.calls_to("/once")
    assert call.signature_valid(secret)
    assert call.header("Kumo-Delivery") == f"{task_id}:once"
    (run,) = runs(task_id, once=True)
    assert (run.trigger, run.outcome) == ("once", "succeeded")
    assert WebhookTaskModel.get(task_key(task_id), "TASK").status == "succeeded"
    assert claim(task_id, "once", once=True).status == "succeeded"


def test_webhook_worker_runs_one_off_webhook_once(receiver):
    # Given a one-off webhook delivered once
    task_id, _ = service.enqueue_webhook(
        url=f"{receiver.base}/once", method="POST", headers={}, body=None, created_by=new_id()
    )
    record = receive_record()
    handle(record)

    # When a duplicate message for it arrives
    scheduled_tasks.send_run(task_id=task_id, slot="once", trigger="once")
    failed = handle(receive_record())

    # Then the receiver was called once
    assert failed == []
    assert len(receiver.calls_to("/once")) == 1


# --- the SSRF guard at delivery -----------------------------------------------------------


def test_webhook_worker_refuses_loopback_when_not_allowed(receiver, configure):
    # Given a task on 127.0.0.1 (created while loopback was allowed), then loopback refused
    task, _ = create_task(receiver)
    record = queued_record(task.task_id)
    configure(WEBHOOK_ALLOW_LOOPBACK="false")

    # When the worker handles it
    failed = handle(record)

    # Then no call is made, the run failed as an unsafe target, and it is not retried
    assert failed == []
    assert receiver.calls == []
    (run,) = runs(task.task_id)
    assert run.outcome == "failed"
    assert run.error is not None
    assert run.error.startswith("unsafe target")


# --- backoff ------------------------------------------------------------------------------


@pytest.mark.parametrize("receive_count", range(1, 14))
def test_backoff_seconds_stays_within_half_and_full_step(receive_count):
    # Given the base backoff of the tests (2 s) and the step for this receive count
    base = get_settings().webhook_backoff_seconds
    step = min(worker.MAX_BACKOFF_SECONDS, base * 2 ** (receive_count - 1))

    # When drawing many backoffs
    drawn = {worker.backoff_seconds(receive_count) for _ in range(200)}

    # Then each lies between half the step and the step, never above the cap
    assert min(drawn) >= step / 2
    assert max(drawn) <= step <= worker.MAX_BACKOFF_SECONDS


# With the tests' 2 s base, steps double up to 512 s at receive 9; receive 10 is capped at 900.
@pytest.mark.parametrize("receive_count", range(1, 9))
def test_backoff_seconds_never_shrinks_from_one_receive_to_the_next(receive_count):
    # Given the backoffs drawn for one receive count and the next, both below the cap
    now = {worker.backoff_seconds(receive_count) for _ in range(100)}
    later = {worker.backoff_seconds(receive_count + 1) for _ in range(100)}

    # Then the shortest later wait is at least the longest wait now
    assert min(later) >= max(now)


def test_backoff_seconds_reaches_the_cap_exactly(monkeypatch):
    # Given the jitter at its largest
    monkeypatch.setattr(worker.random, "uniform", lambda low, high: high)

    # When the receive count is far beyond the doubling range
    # Then the wait is the cap, 900 s, never more
    assert worker.backoff_seconds(50) == worker.MAX_BACKOFF_SECONDS == 900
