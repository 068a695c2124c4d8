"""Scheduled webhook tasks: a user's CRUD, run-now, secret rotation and the execution log.

A task belongs to the user who created it; anyone else gets the same 404 as for a task
that does not exist. The per-user count and the one-task-per-URL rule are conditions in
the create and delete transactions, so two concurrent requests cannot both slip past them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from kumo.core import abuse_limits as limits
from kumo.core import aws, clock, dynamo, rate_limit
from kumo.core.config import get_settings
from kumo.core.errors import KumoError, NotFound, invalid
from kumo.core.ids import is_id, new_id
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor
from kumo.tasks import webhook
from kumo.tasks.errors import DuplicateTask, TaskLimitReached
from kumo.tasks.models import (
    COUNT,
    META,
    RUN_PREFIX,
    RateCounterModel,
    RunModel,
    ScheduledTaskModel,
    TaskCountModel,
    UrlClaimModel,
    due_partition,
    due_shard,
    due_sort_key,
    owner_key,
    scheduled_key,
    url_claim_key,
)
from kumo.tasks.schedule_expressions import Schedule, ScheduleError, TimeZoneError, parse_schedule
from kumo.tasks.schemas import (
    CreateScheduledTaskRequest,
    RunOut,
    ScheduledTaskOut,
    UpdateScheduledTaskRequest,
)

logger = Logger(child=True)

_CHANGED = "The task changed while this request ran; try again."

MAX_BODY_BYTES = 64 * 1024
_NO_TASK = "No such scheduled task."


# --- validation ---------------------------------------------------------------------------


def _checked_schedule(expression: str, timezone: str) -> Schedule:
    try:
        schedule = parse_schedule(expression, timezone)
    except ScheduleError as error:
        field = "timezone" if isinstance(error, TimeZoneError) else "schedule"
        raise invalid(field, str(error)) from error
    minimum = get_settings().schedule_min_interval_seconds
    if schedule.min_gap_seconds() < minimum:
        raise invalid("schedule", f"Runs must be at least {minimum} seconds apart.")
    return schedule


def _checked_url(url: str) -> str:
    try:
        return webhook.check_target(url, allow_loopback=get_settings().webhook_allow_loopback)
    except webhook.UnsafeTarget as error:
        raise invalid("url", str(error)) from error


def _checked_headers(headers: dict[str, str]) -> str:
    try:
        return json.dumps(webhook.check_headers(headers), sort_keys=True)
    except ValueError as error:
        raise invalid("headers", str(error)) from error


def _checked_body(method: str, body: Any) -> str | None:
    if body is None:
        return None
    if method == "GET":
        raise invalid("body", "A GET request carries no body; use POST, PUT or PATCH.")
    encoded = json.dumps(body, separators=(",", ":"))
    if len(encoded.encode()) > MAX_BODY_BYTES:
        raise invalid("body", f"The body must be at most {MAX_BODY_BYTES // 1024} KiB of JSON.")
    return encoded


def _first_slot(schedule: Schedule) -> datetime:
    try:
        return schedule.first_slot(_now())
    except ScheduleError as error:
        raise invalid("schedule", str(error)) from error


def url_digest(normalised_url: str) -> str:
    return hashlib.sha256(normalised_url.encode()).hexdigest()


def slot_text(moment: datetime) -> str:
    return clock.utc_iso(moment.timestamp())


def _now() -> datetime:
    return datetime.fromtimestamp(clock.now(), UTC)


# --- reading ------------------------------------------------------------------------------


def get_task(*, owner_id: str, task_id: str) -> ScheduledTaskModel:
    if not is_id(task_id):
        raise NotFound(_NO_TASK)
    task = dynamo.get_or_none(ScheduledTaskModel, scheduled_key(task_id), META)
    if task is None or task.owner_id != owner_id:
        raise NotFound(_NO_TASK)
    return task


def list_tasks(
    *, owner_id: str, limit: int | None, cursor: str | None
) -> tuple[list[ScheduledTaskModel], str | None]:
    """Newest first: ids are time-ordered."""
    results = ScheduledTaskModel.by_owner.query(
        owner_key(owner_id),
        scan_index_forward=False,
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(cursor, partition=("gsi1pk", owner_key(owner_id))),
    )
    tasks = list(results)
    return tasks, encode_cursor(results.last_evaluated_key)


def list_runs(
    *, owner_id: str, task_id: str, limit: int | None, cursor: str | None
) -> tuple[list[RunModel], str | None]:
    get_task(owner_id=owner_id, task_id=task_id)
    partition = scheduled_key(task_id)
    results = RunModel.query(
        partition,
        RunModel.sk.startswith(RUN_PREFIX),
        scan_index_forward=False,
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(cursor, partition=("pk", partition)),
    )
    runs = list(results)
    return runs, encode_cursor(results.last_evaluated_key)


def task_out(task: ScheduledTaskModel) -> ScheduledTaskOut:
    return ScheduledTaskOut(
        id=task.task_id,
        name=task.name,
        schedule=task.schedule,
        timezone=task.timezone,
        url=task.url,
        method=task.method,  # type: ignore[arg-type]
        headers=json.loads(task.headers_json),
        body=json.loads(task.body_json) if task.body_json else None,
        status=task.status,  # type: ignore[arg-type]
        next_run_at=task.next_run_at,
        last_run_at=task.last_run_at,
        last_outcome=task.last_outcome,
        created_at=task.created_at,
        updated_at=task.updated_at,
    )


def run_out(run: RunModel) -> RunOut:
    return RunOut(
        slot=run.slot,
        trigger=run.trigger,  # type: ignore[arg-type]
        attempt=int(run.attempt),
        started_at=run.started_at,
        duration_ms=int(run.duration_ms),
        outcome=run.outcome,  # type: ignore[arg-type]
        status_code=int(run.status_code) if run.status_code is not None else None,
        error=run.error,
        excerpt=run.excerpt,
    )


# --- writing ------------------------------------------------------------------------------


def _existing_for_url(owner_id: str, digest: str) -> str | None:
    claim = dynamo.get_or_none(UrlClaimModel, owner_key(owner_id), url_claim_key(digest))
    return None if claim is None else str(claim.task_id)


def _duplicate(existing_id: str) -> DuplicateTask:
    return DuplicateTask("You already have a scheduled task for this URL.", existing_id=existing_id)


def _set_due(task: ScheduledTaskModel, next_run: datetime | None) -> None:
    if next_run is None:
        task.next_run_at = task.gsi2pk = task.gsi2sk = None
        return
    task.next_run_at = slot_text(next_run)
    task.gsi2pk = due_partition(due_shard(task.task_id))
    task.gsi2sk = due_sort_key(task.next_run_at, task.task_id)


def create_task(
    *, owner_id: str, request: CreateScheduledTaskRequest
) -> tuple[ScheduledTaskModel, str]:
    """Store a task and its URL claim, count it against the limit; returns it and its secret."""
    settings = get_settings()
    schedule = _checked_schedule(request.schedule, request.timezone)
    url = _checked_url(request.url)
    headers_json = _checked_headers(request.headers)
    body_json = _checked_body(request.method, request.body)
    digest = url_digest(url)
    existing = _existing_for_url(owner_id, digest)
    if existing:
        raise _duplicate(existing)

    task_id, secret, now = new_id(), webhook.new_secret(), clock.utc_iso()
    task = ScheduledTaskModel(
        pk=scheduled_key(task_id),
        sk=META,
        task_id=task_id,
        owner_id=owner_id,
        name=request.name,
        schedule=request.schedule,
        timezone=request.timezone,
        url=url,
        method=request.method,
        headers_json=headers_json,
        body_json=body_json,
        secret=secret,
        status="paused" if request.paused else "active",
        created_at=now,
        updated_at=now,
        gsi1pk=owner_key(owner_id),
        gsi1sk=scheduled_key(task_id),
    )
    _set_due(task, None if request.paused else _first_slot(schedule))
    limit = settings.scheduled_tasks_per_user

    def explain() -> KumoError | None:
        found = _existing_for_url(owner_id, digest)
        if found:
            return _duplicate(found)
        return TaskLimitReached(
            f"You have reached the limit of {limit} scheduled tasks; delete one first.",
            limit=limit,
        )

    counter = TaskCountModel(owner_key(owner_id), COUNT)
    with dynamo.transaction(explain, changed=_CHANGED) as transaction:
        transaction.save(task, condition=ScheduledTaskModel.pk.does_not_exist())
        transaction.save(
            UrlClaimModel(owner_key(owner_id), url_claim_key(digest), task_id=task_id),
            condition=UrlClaimModel.pk.does_not_exist(),
        )
        transaction.update(
            counter,
            actions=[TaskCountModel.task_count.add(1)],
            condition=(TaskCountModel.task_count < limit)
            | TaskCountModel.task_count.does_not_exist(),
        )
    logger.info("scheduled task created", task_id=task_id, owner_id=owner_id)
    return task, secret


def update_task(
    *, owner_id: str, task_id: str, request: UpdateScheduledTaskRequest
) -> ScheduledTaskModel:
    task = get_task(owner_id=owner_id, task_id=task_id)
    sent = request.model_fields_set
    previous_url, previous_updated_at = task.url, task.updated_at

    if sent & {"schedule", "timezone"}:
        task.schedule = request.schedule or task.schedule
        task.timezone = request.timezone or task.timezone
        schedule = _checked_schedule(task.schedule, task.timezone)
    else:
        # Stored schedules were checked when set; a later, stricter limit does not lock them.
        schedule = Schedule(task.schedule, task.timezone)
    if "url" in sent and request.url is not None:
        task.url = _checked_url(request.url)
    if "method" in sent and request.method is not None:
        task.method = request.method
    if "headers" in sent:
        task.headers_json = _checked_headers(request.headers or {})
    if "body" in sent:
        task.body_json = _checked_body(task.method, request.body)
    elif task.body_json is not None:
        _checked_body(task.method, json.loads(task.body_json))
    if "name" in sent and request.name is not None:
        task.name = request.name
    if "paused" in sent and request.paused is not None:
        task.status = "paused" if request.paused else "active"

    if task.status == "paused":
        _set_due(task, None)
    elif sent & {"schedule", "timezone", "paused"}:
        _set_due(task, _first_slot(schedule))
    elif task.next_run_at is None:
        # An ended schedule stays ended: editing other fields must not fail on it.
        try:
            _set_due(task, schedule.first_slot(_now()))
        except ScheduleError:
            _set_due(task, None)
    task.updated_at = clock.utc_iso()

    old_digest, new_digest = url_digest(previous_url), url_digest(task.url)

    def explain() -> KumoError | None:
        found = _existing_for_url(owner_id, new_digest)
        if new_digest != old_digest and found and found != task_id:
            return _duplicate(found)
        return None

    with dynamo.transaction(explain, changed=_CHANGED) as transaction:
        # Guarded by updated_at: a concurrent edit makes this one fail rather than vanish.
        transaction.save(task, condition=ScheduledTaskModel.updated_at == previous_updated_at)
        if new_digest != old_digest:
            transaction.delete(
                UrlClaimModel(owner_key(owner_id), url_claim_key(old_digest)),
                condition=UrlClaimModel.task_id == task_id,
            )
            transaction.save(
                UrlClaimModel(owner_key(owner_id), url_claim_key(new_digest), task_id=task_id),
                condition=UrlClaimModel.pk.does_not_exist(),
            )
    logger.info("scheduled task updated", task_id=task_id, fields=sorted(sent))
    return task


def delete_task(*, owner_id: str, task_id: str) -> None:
    """Runs and slot claims stay until their TTL: the log outlives the task briefly."""
    task = get_task(owner_id=owner_id, task_id=task_id)
    with dynamo.transaction(lambda: NotFound(_NO_TASK), changed=_CHANGED) as transaction:
        transaction.delete(task, condition=ScheduledTaskModel.owner_id == owner_id)
        transaction.delete(UrlClaimModel(owner_key(owner_id), url_claim_key(url_digest(task.url))))
        transaction.update(
            TaskCountModel(owner_key(owner_id), COUNT),
            actions=[TaskCountModel.task_count.add(-1)],
        )
    logger.info("scheduled task deleted", task_id=task_id)


def rotate_secret(*, owner_id: str, task_id: str) -> str:
    task = get_task(owner_id=owner_id, task_id=task_id)
    secret = webhook.new_secret()
    task.update(
        actions=[
            ScheduledTaskModel.secret.set(secret),
            ScheduledTaskModel.updated_at.set(clock.utc_iso()),
        ],
        condition=ScheduledTaskModel.owner_id == owner_id,
    )
    logger.info("scheduled task secret rotated", task_id=task_id)
    return secret


def run_now(*, owner_id: str, task_id: str) -> str:
    """Queue one run outside the schedule (paused tasks too), within the user's allowance
    of manual runs (ADR 24); returns its slot."""
    get_task(owner_id=owner_id, task_id=task_id)
    rate_limit.spend(RateCounterModel, limits.RUN_NOW_PER_USER, owner_id)
    slot = clock.utc_iso()
    if slot.endswith(":00.000Z"):
        # Schedule slots are whole minutes; a manual slot must never equal one.
        slot = slot.removesuffix("000Z") + "001Z"
    send_run(task_id=task_id, slot=slot, trigger="manual")
    logger.info("scheduled task run requested", task_id=task_id, slot=slot)
    return slot


def send_run(*, task_id: str, slot: str, trigger: str) -> None:
    aws.sqs().send_message(
        QueueUrl=get_settings().webhook_queue_url,
        MessageBody=json.dumps({"task_id": task_id, "slot": slot, "trigger": trigger}),
    )
