"""Request and response bodies of /api/v1/scheduled-tasks and the admin task routes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from kumo.core.schemas import DisplayName, Email, StrictModel

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
Schedule = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
TimeZone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
# A JSON object or array; its encoded size is checked by the service.
JsonBody = dict[str, Any] | list[Any]
TaskStatus = Literal["active", "paused"]
RunOutcome = Literal["succeeded", "retry", "failed", "skipped"]
DeadLetterQueue = Literal["mail", "webhooks"]


class CreateScheduledTaskRequest(StrictModel):
    name: DisplayName
    schedule: Schedule = Field(
        description="5-field cron (`*/5 * * * *`), EventBridge `cron(...)` or `rate(...)`."
    )
    timezone: TimeZone = Field(default="UTC", description="IANA name the cron fields refer to.")
    url: Url
    method: HttpMethod = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: JsonBody | None = None
    paused: bool = False


class UpdateScheduledTaskRequest(StrictModel):
    """Only the fields sent change; `body: null` removes the body."""

    name: DisplayName | None = None
    schedule: Schedule | None = None
    timezone: TimeZone | None = None
    url: Url | None = None
    method: HttpMethod | None = None
    headers: dict[str, str] | None = None
    body: JsonBody | None = None
    paused: bool | None = None


class ScheduledTaskOut(BaseModel):
    id: str
    name: str
    schedule: str
    timezone: str
    url: str
    method: HttpMethod
    headers: dict[str, str]
    body: JsonBody | None
    status: TaskStatus
    next_run_at: str | None
    last_run_at: str | None
    last_outcome: str | None
    created_at: str
    updated_at: str


class ScheduledTaskCreated(ScheduledTaskOut):
    signing_secret: str = Field(
        description="Shown once: the key of the Kumo-Signature header (docs/webhooks.md)."
    )


class SigningSecretOut(BaseModel):
    id: str
    signing_secret: str


class RunQueuedOut(BaseModel):
    task_id: str
    slot: str


class RunOut(BaseModel):
    slot: str
    trigger: Literal["schedule", "manual", "once"]
    attempt: int
    started_at: str
    duration_ms: int
    outcome: RunOutcome
    status_code: int | None
    error: str | None
    excerpt: str


class EmailTaskRequest(StrictModel):
    kind: Literal["email"]
    to: Email
    template: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    params: dict[str, Any] = Field(default_factory=dict)


class WebhookTaskRequest(StrictModel):
    kind: Literal["webhook"]
    url: Url
    method: HttpMethod = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: JsonBody | None = None


AdminTaskRequest = Annotated[EmailTaskRequest | WebhookTaskRequest, Field(discriminator="kind")]


class AdminTaskOut(BaseModel):
    id: str
    kind: Literal["email", "webhook"]
    status: str
    created_at: str
    template: str | None = None
    recipient: str | None = None
    url: str | None = None
    attempts: int | None = None
    # Returned when an admin queues a webhook: the key its calls are signed with.
    signing_secret: str | None = None


class DeadLetterOut(BaseModel):
    message_id: str
    queue: DeadLetterQueue
    body: dict[str, Any]
    sent_at: str | None
    receive_count: int
    task_id: str | None
    last_error: str | None


class DeadLetterList(BaseModel):
    items: list[DeadLetterOut]
    approximate_total: int


class RedriveRequest(StrictModel):
    queue: DeadLetterQueue
    message_ids: Annotated[list[str], Field(max_length=100)] | None = Field(
        default=None, description="Only these messages; all (up to `limit`) when omitted."
    )
    limit: Annotated[int, Field(ge=1, le=100)] = 100


class RedriveOut(BaseModel):
    moved: list[str]
    not_found: list[str]
