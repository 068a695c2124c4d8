"""The scheduler tick: find due tasks through the due index, queue their ids, advance them.

Queueing comes before advancing. A tick that dies in between leaves the task due, and the
next tick queues the same slot again; the worker's slot claim runs it once. Advancing is
conditional on the slot the tick read, so two overlapping ticks cannot both move a task.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from aws_lambda_powertools import Logger
from pynamodb.exceptions import UpdateError
from pynamodb.expressions.update import Action

from kumo.core import aws, clock
from kumo.core.config import get_settings
from kumo.tasks.models import (
    DUE_SHARDS,
    ScheduledTaskModel,
    due_partition,
    due_sort_key,
    scheduled_key,
)
from kumo.tasks.schedule_expressions import Schedule, ScheduleError
from kumo.tasks.scheduled_tasks import slot_text

logger = Logger(child=True)

# I/O bound: threads overlap the SQS and DynamoDB round trips of one tick.
_THREADS = 16
# A bound per tick keeps one invocation inside its timeout; the rest are due next tick.
MAX_TASKS_PER_TICK = 20_000
_SQS_BATCH = 10


@dataclass(frozen=True, slots=True)
class DueTask:
    task_id: str
    schedule: str
    timezone: str
    slot: str


@dataclass(frozen=True, slots=True)
class TickReport:
    due: int
    queued: int
    advanced: int


def find_due(now: datetime) -> list[DueTask]:
    # '~' sorts after '#': every key whose slot is at or before now.
    upper = f"{slot_text(now)}~"
    found: list[DueTask] = []
    for shard in range(DUE_SHARDS):
        for item in ScheduledTaskModel.due.query(
            due_partition(shard), ScheduledTaskModel.gsi2sk <= upper
        ):
            if item.next_run_at is None:
                continue
            found.append(DueTask(item.task_id, item.schedule, item.timezone, item.next_run_at))
            if len(found) >= MAX_TASKS_PER_TICK:
                return found
    return found


def _queue(batch: list[DueTask]) -> list[DueTask]:
    """Send one SQS batch; returns the tasks whose message was accepted."""
    response = aws.sqs().send_message_batch(
        QueueUrl=get_settings().webhook_queue_url,
        Entries=[
            {
                "Id": str(index),
                "MessageBody": json.dumps(
                    {"task_id": task.task_id, "slot": task.slot, "trigger": "schedule"}
                ),
            }
            for index, task in enumerate(batch)
        ],
    )
    for failure in response.get("Failed", []):
        logger.warning("run not queued", task_id=batch[int(failure["Id"])].task_id)
    return [batch[int(entry["Id"])] for entry in response.get("Successful", [])]


def _advance(task: DueTask, now: datetime) -> bool:
    slot = datetime.fromisoformat(task.slot)
    try:
        following = Schedule(task.schedule, task.timezone).slot_after(slot, now)
        next_run_at = slot_text(following)
        actions: list[Action] = [
            ScheduledTaskModel.next_run_at.set(next_run_at),
            ScheduledTaskModel.gsi2sk.set(due_sort_key(next_run_at, task.task_id)),
        ]
    except ScheduleError:
        # Its last run (an EventBridge year range ended): it leaves the due index for good.
        logger.info("schedule has no further run", task_id=task.task_id)
        actions = [
            ScheduledTaskModel.next_run_at.remove(),
            ScheduledTaskModel.gsi2pk.remove(),
            ScheduledTaskModel.gsi2sk.remove(),
        ]
    try:
        ScheduledTaskModel(scheduled_key(task.task_id), "META").update(
            actions=actions,
            condition=(ScheduledTaskModel.next_run_at == task.slot)
            & (ScheduledTaskModel.status == "active"),
        )
    except UpdateError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False  # another tick advanced it, or the owner paused or changed it
        raise
    return True


def enqueue_due_tasks(now: datetime | None = None) -> TickReport:
    moment = now or datetime.fromtimestamp(clock.now(), UTC)
    due = find_due(moment)
    batches = [due[i : i + _SQS_BATCH] for i in range(0, len(due), _SQS_BATCH)]
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        queued = [task for sent in pool.map(_queue, batches) for task in sent]
        advanced = sum(pool.map(lambda task: _advance(task, moment), queued))
    report = TickReport(due=len(due), queued=len(queued), advanced=advanced)
    logger.info("scheduler tick", due=report.due, queued=report.queued, advanced=advanced)
    return report
