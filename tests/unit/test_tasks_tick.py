"""The scheduler tick: due tasks are queued once, by id, and advanced past the tick's time."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from kumo.core import clock
from kumo.core.ids import new_id
from kumo.tasks import scheduled_tasks, tick
from kumo.tasks.models import DUE_SHARDS, ScheduledTaskModel, due_shard, scheduled_key
from kumo.tasks.schemas import CreateScheduledTaskRequest, UpdateScheduledTaskRequest

from tests.unit.conftest import WEBHOOK_QUEUE_URL, FakeContext, load_handler

pytestmark = pytest.mark.usefixtures("aws")

PUBLIC_V4 = "93.184.215.14"
# Tasks are created at 10:02:30 UTC, so `*/5 * * * *` first runs at 10:05.
CREATED = datetime(2090, 1, 1, 10, 2, 30, tzinfo=UTC)
FIRST_SLOT = datetime(2090, 1, 1, 10, 5, tzinfo=UTC)
EVERY_FIVE = "*/5 * * * *"


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "now", lambda: CREATED.timestamp())


@pytest.fixture(autouse=True)
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (PUBLIC_V4, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def create_task(
    owner_id: str | None = None, *, schedule: str = EVERY_FIVE, paused: bool = False
) -> ScheduledTaskModel:
    task, _ = scheduled_tasks.create_task(
        owner_id=owner_id or new_id(),
        request=CreateScheduledTaskRequest(
            name="tick",
            schedule=schedule,
            url=f"https://hooks.example.com/{new_id().lower()}",
            paused=paused,
        ),
    )
    return task


def stored(task_id: str) -> ScheduledTaskModel:
    return ScheduledTaskModel.get(scheduled_key(task_id), "META")


def drain_queue() -> list[dict[str, Any]]:
    """Every message on the webhook queue, bodies parsed."""
    sqs = boto3.client("sqs")
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=WEBHOOK_QUEUE_URL, MaxNumberOfMessages=10, VisibilityTimeout=300
        ).get("Messages", [])
        if not messages:
            return bodies
        bodies.extend(json.loads(message["Body"]) for message in messages)


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2090, 1, 1, hour, minute, second, tzinfo=UTC)


# --- one tick -------------------------------------------------------------------------------


def test_enqueue_due_tasks_queues_due_task_once_with_ids_only():
    # Given an active task due at 10:05
    task = create_task()
    assert task.next_run_at == "2090-01-01T10:05:00.000Z"

    # When the tick runs at 10:05
    report = tick.enqueue_due_tasks(now=FIRST_SLOT)

    # Then one message carries its id, slot and trigger, and nothing else
    assert report == tick.TickReport(due=1, queued=1, advanced=1)
    assert drain_queue() == [
        {"task_id": task.task_id, "slot": "2090-01-01T10:05:00.000Z", "trigger": "schedule"}
    ]


def test_enqueue_due_tasks_advances_next_run_to_following_slot():
    # Given an active task due at 10:05
    task = create_task()

    # When the tick runs at 10:05
    tick.enqueue_due_tasks(now=FIRST_SLOT)

    # Then it next runs at 10:10, in the item and its due-index key
    after = stored(task.task_id)
    assert after.next_run_at == "2090-01-01T10:10:00.000Z"
    assert after.gsi2sk == f"2090-01-01T10:10:00.000Z#{task.task_id}"


def test_enqueue_due_tasks_skips_missed_slots_past_now():
    # Given a task due at 10:05, and a scheduler that was behind until 10:17:30
    task = create_task()

    # When the tick runs at 10:17:30
    report = tick.enqueue_due_tasks(now=at(10, 17, 30))

    # Then the 10:05 slot is queued once and the next run is the first slot after now
    assert report.queued == 1
    assert [body["slot"] for body in drain_queue()] == ["2090-01-01T10:05:00.000Z"]
    assert stored(task.task_id).next_run_at == "2090-01-01T10:20:00.000Z"


def test_enqueue_due_tasks_keeps_rate_phase_when_advancing():
    # Given a rate task created at 10:02:30 (first run 10:09:30, rounded up to 10:10)
    task = create_task(schedule="rate(7 minutes)")
    assert task.next_run_at == "2090-01-01T10:10:00.000Z"

    # When the tick runs late, at 10:30
    tick.enqueue_due_tasks(now=at(10, 30))

    # Then the next run keeps the 7-minute phase from 10:10: 10:31
    assert stored(task.task_id).next_run_at == "2090-01-01T10:31:00.000Z"


def test_enqueue_due_tasks_does_not_queue_paused_task():
    # Given a task created paused and one paused after creation
    created_paused = create_task(paused=True)
    owner = new_id()
    paused_later = create_task(owner)
    scheduled_tasks.update_task(
        owner_id=owner,
        task_id=paused_later.task_id,
        request=UpdateScheduledTaskRequest(paused=True),
    )

    # When the tick runs a day later
    report = tick.enqueue_due_tasks(now=CREATED + timedelta(days=1))

    # Then neither is due or queued, and neither gets a next run
    assert report == tick.TickReport(due=0, queued=0, advanced=0)
    assert drain_queue() == []
    assert stored(created_paused.task_id).next_run_at is None
    assert stored(paused_later.task_id).next_run_at is None


def test_enqueue_due_tasks_does_not_queue_task_not_yet_due():
    # Given a task due at 10:05
    task = create_task()

    # When the tick runs at 10:04:59
    report = tick.enqueue_due_tasks(now=at(10, 4, 59))

    # Then nothing is queued and its next run is unchanged
    assert report.due == 0
    assert drain_queue() == []
    assert stored(task.task_id).next_run_at == "2090-01-01T10:05:00.000Z"


def test_enqueue_due_tasks_queues_only_the_due_ones():
    # Given a task due at 10:05 and a yearly one
    due = create_task()
    create_task(schedule="0 0 1 1 *")

    # When the tick runs at 10:05
    tick.enqueue_due_tasks(now=FIRST_SLOT)

    # Then only the due one is queued
    assert [body["task_id"] for body in drain_queue()] == [due.task_id]


# --- ticks that repeat or overlap -----------------------------------------------------------


def test_enqueue_due_tasks_second_tick_for_same_now_queues_nothing():
    # Given a due task, and a first tick at 10:05 that queued it
    task = create_task()
    first = tick.enqueue_due_tasks(now=FIRST_SLOT)

    # When a second tick runs for the same moment
    second = tick.enqueue_due_tasks(now=FIRST_SLOT)

    # Then it finds nothing due: the slot was queued once in total
    assert first.queued == 1
    assert second == tick.TickReport(due=0, queued=0, advanced=0)
    assert drain_queue() == [
        {"task_id": task.task_id, "slot": "2090-01-01T10:05:00.000Z", "trigger": "schedule"}
    ]


def test_advance_with_stale_slot_from_overlapping_tick_changes_nothing():
    # Given a tick that read the due task, and an overlapping tick that then ran in full
    task = create_task()
    (stale,) = tick.find_due(FIRST_SLOT)
    tick.enqueue_due_tasks(now=FIRST_SLOT)
    advanced_to = stored(task.task_id).next_run_at

    # When the first tick tries to advance from the slot it read
    moved = tick._advance(stale, FIRST_SLOT)

    # Then the condition refuses it and the next run is the one the full tick set
    assert moved is False
    assert stored(task.task_id).next_run_at == advanced_to == "2090-01-01T10:10:00.000Z"


def test_advance_refuses_task_paused_after_it_was_found():
    # Given a due task found by a tick, then paused by its owner
    owner = new_id()
    task = create_task(owner)
    (due,) = tick.find_due(FIRST_SLOT)
    scheduled_tasks.update_task(
        owner_id=owner, task_id=task.task_id, request=UpdateScheduledTaskRequest(paused=True)
    )

    # When the tick advances it
    moved = tick._advance(due, FIRST_SLOT)

    # Then it stays paused, out of the due index
    assert moved is False
    after = stored(task.task_id)
    assert (after.status, after.next_run_at, after.gsi2pk) == ("paused", None, None)


def test_advance_after_task_was_deleted_does_not_recreate_it():
    # Given a due task found by a tick, then deleted by its owner
    owner = new_id()
    task = create_task(owner)
    (due,) = tick.find_due(FIRST_SLOT)
    scheduled_tasks.delete_task(owner_id=owner, task_id=task.task_id)

    # When the tick advances it
    moved = tick._advance(due, FIRST_SLOT)

    # Then nothing is written back
    assert moved is False
    assert list(ScheduledTaskModel.scan(ScheduledTaskModel.sk == "META")) == []


def test_enqueue_due_tasks_leaves_due_index_when_schedule_has_no_further_run():
    # Given a task whose EventBridge year range holds a single run, on 31 December 2090
    task = create_task(schedule="cron(0 12 31 12 ? 2090)")
    assert task.next_run_at == "2090-12-31T12:00:00.000Z"
    last = datetime(2090, 12, 31, 12, 0, tzinfo=UTC)

    # When the tick runs at that slot
    report = tick.enqueue_due_tasks(now=last)

    # Then the run is queued and the task leaves the due index, still active
    assert (report.queued, report.advanced) == (1, 1)
    after = stored(task.task_id)
    assert (after.next_run_at, after.gsi2pk, after.gsi2sk) == (None, None, None)
    assert after.status == "active"
    assert tick.enqueue_due_tasks(now=last + timedelta(days=400)).due == 0


def test_enqueue_due_tasks_queues_many_tasks_across_every_shard():
    # Given 120 due tasks of three users, spread over every due-index shard
    tasks = [create_task(owner) for owner in (new_id(), new_id(), new_id()) for _ in range(40)]
    assert {due_shard(task.task_id) for task in tasks} == set(range(DUE_SHARDS))

    # When the tick runs at 10:05
    report = tick.enqueue_due_tasks(now=FIRST_SLOT)

    # Then every one is queued once and advanced
    assert report == tick.TickReport(due=120, queued=120, advanced=120)
    queued = [body["task_id"] for body in drain_queue()]
    assert sorted(queued) == sorted(task.task_id for task in tasks)
    assert {stored(task.task_id).next_run_at for task in tasks} == {"2090-01-01T10:10:00.000Z"}


def test_find_due_reads_only_the_due_index_projection():
    # Given a due task with a body and a secret
    task = create_task()

    # When the tick looks for due tasks
    (due,) = tick.find_due(FIRST_SLOT)

    # Then it knows what computes the next run, and nothing more
    assert due == tick.DueTask(task.task_id, EVERY_FIVE, "UTC", "2090-01-01T10:05:00.000Z")


# --- the scheduler function -----------------------------------------------------------------


def test_scheduler_handler_returns_tick_counts(monkeypatch):
    # Given two tasks due at 10:05 and a paused one, and the clock at 10:06
    create_task()
    create_task()
    create_task(paused=True)
    monkeypatch.setattr(clock, "now", lambda: at(10, 6).timestamp())

    # When EventBridge invokes the scheduler function
    result = load_handler("tasks/scheduler").lambda_handler({}, FakeContext())

    # Then it answers the tick's counts
    assert result == {"due": 2, "queued": 2, "advanced": 2}
    assert len(drain_queue()) == 2
