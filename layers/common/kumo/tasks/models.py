"""Tasks table items. Key building for this context lives here and nowhere else.

Access patterns (all GetItem or Query):
  e-mail or one-off webhook task  TASK#<id> / TASK
  scheduled task                  SCHED#<id> / META
  a user's scheduled tasks        gsi1: OWNER#<user> / SCHED#<id>       (ids sort by time)
  due scheduled tasks             gsi2: DUE#<shard> / <next run>#<id>   (active tasks only)
  one run slot (its claim)        <task pk> / SLOT#<slot>
  a task's execution log          <task pk> / begins_with RUN#          (newest first)
  a user's task count             OWNER#<user> / COUNT                  (the plan limit)
  a user's task for one URL       OWNER#<user> / URL#<sha256 of normalised URL>
  rate-limit windows       RATE#<limit>#<subject hash> / WINDOW#<start>  (kumo.core.rate_limit)
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from kumo.core.config import get_settings
from kumo.core.ids import shard_of


def task_key(task_id: str) -> str:
    return f"TASK#{task_id}"


class TasksItem(Model):
    """An item of the tasks table: the table and its key, for every model stored there."""

    class Meta:
        table_name = get_settings().tasks_table
        region = get_settings().region

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class EmailTaskModel(TasksItem):
    sk = UnicodeAttribute(range_key=True, default="TASK")
    task_id = UnicodeAttribute()
    kind = UnicodeAttribute(default="email")
    template = UnicodeAttribute()
    recipient = UnicodeAttribute()
    # The template params as JSON, so nested values (a report's rows) come back exactly as given.
    # Holds one-time links until the mail is sent, then is cleared to "{}".
    params_json = UnicodeAttribute(default="{}")
    status = UnicodeAttribute(default="queued")
    attempts = NumberAttribute(default=0)
    created_at = UnicodeAttribute()
    sent_at = UnicodeAttribute(null=True)
    message_id = UnicodeAttribute(null=True)
    expires_at = NumberAttribute()

    @property
    def params(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.params_json)
        return loaded


# --- webhook tasks: one-off calls and scheduled tasks ---------------------------------------

META = "META"
COUNT = "COUNT"
SLOT_PREFIX = "SLOT#"
RUN_PREFIX = "RUN#"
# Spreads the due index over a few partitions so one hot key never caps the tick's writes;
# changing it needs a re-index of every active task.
DUE_SHARDS = 4


def scheduled_key(task_id: str) -> str:
    return f"SCHED#{task_id}"


def owner_key(user_id: str) -> str:
    return f"OWNER#{user_id}"


def url_claim_key(url_digest: str) -> str:
    return f"URL#{url_digest}"


def due_partition(shard: int) -> str:
    return f"DUE#{shard}"


def due_shard(task_id: str) -> int:
    return shard_of(task_id, DUE_SHARDS)


def due_sort_key(next_run_at: str, task_id: str) -> str:
    return f"{next_run_at}#{task_id}"


def slot_key(slot: str) -> str:
    return f"{SLOT_PREFIX}{slot}"


def run_key(slot: str, attempt: int) -> str:
    return f"{RUN_PREFIX}{slot}#{attempt:03d}"


class OwnerIndex(GlobalSecondaryIndex["ScheduledTaskModel"]):
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class DueIndex(GlobalSecondaryIndex["ScheduledTaskModel"]):
    class Meta:
        index_name = "gsi2"
        # The tick needs only what computes the next run, not bodies, headers or secrets.
        projection = IncludeProjection(["task_id", "schedule", "timezone", "next_run_at"])

    gsi2pk = UnicodeAttribute(hash_key=True)
    gsi2sk = UnicodeAttribute(range_key=True)


class ScheduledTaskModel(TasksItem):
    sk = UnicodeAttribute(range_key=True, default=META)
    task_id = UnicodeAttribute()
    owner_id = UnicodeAttribute()
    name = UnicodeAttribute()
    schedule = UnicodeAttribute()
    timezone = UnicodeAttribute()
    url = UnicodeAttribute()
    method = UnicodeAttribute()
    headers_json = UnicodeAttribute(default="{}")
    body_json = UnicodeAttribute(null=True)
    # The worker needs the secret itself to sign; it is never returned after creation.
    secret = UnicodeAttribute()
    status = UnicodeAttribute(default="active")
    next_run_at = UnicodeAttribute(null=True)
    last_run_at = UnicodeAttribute(null=True)
    last_outcome = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    # Present only while the task is active: a paused task drops out of the due index.
    gsi2pk = UnicodeAttribute(null=True)
    gsi2sk = UnicodeAttribute(null=True)

    by_owner = OwnerIndex()
    due = DueIndex()


class WebhookTaskModel(TasksItem):
    """A one-off webhook call another context (or an admin) queued."""

    sk = UnicodeAttribute(range_key=True, default="TASK")
    task_id = UnicodeAttribute()
    kind = UnicodeAttribute(default="webhook")
    url = UnicodeAttribute()
    method = UnicodeAttribute()
    headers_json = UnicodeAttribute(default="{}")
    body_json = UnicodeAttribute(null=True)
    secret = UnicodeAttribute()
    status = UnicodeAttribute(default="queued")
    created_by = UnicodeAttribute()
    created_at = UnicodeAttribute()
    expires_at = NumberAttribute()


class TaskCountModel(TasksItem):
    sk = UnicodeAttribute(range_key=True, default=COUNT)
    # Changed in the same transaction as every create and delete, so the limit is a
    # condition DynamoDB checks rather than a count two requests could both read.
    task_count = NumberAttribute(default=0)


class UrlClaimModel(TasksItem):
    task_id = UnicodeAttribute()


class SlotClaimModel(TasksItem):
    """One scheduled slot (or one run-now, or a one-off call): who runs it and how it ended."""

    # The SQS message that owns the slot: a duplicate message for the slot finds another id.
    message_id = UnicodeAttribute()
    status = UnicodeAttribute()
    attempts = NumberAttribute(default=0)
    trigger = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    expires_at = NumberAttribute()


class RunModel(TasksItem):
    """One attempt in a task's execution log."""

    slot = UnicodeAttribute()
    trigger = UnicodeAttribute()
    attempt = NumberAttribute()
    started_at = UnicodeAttribute()
    duration_ms = NumberAttribute()
    outcome = UnicodeAttribute()
    status_code = NumberAttribute(null=True)
    error = UnicodeAttribute(null=True)
    excerpt = UnicodeAttribute(default="")
    expires_at = NumberAttribute()


class RateCounterModel(TasksItem):
    """A rate-limit window of this context's limits (kumo.core.rate_limit, ADR 24):
    RATE#<limit>#<sha256 of subject> / WINDOW#<window start>, removed by TTL."""

    hits = NumberAttribute(default=0)
    expires_at = NumberAttribute()
