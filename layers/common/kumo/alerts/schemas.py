"""Request and response bodies of /api/v1/alert-rules and /api/v1/alerts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from kumo.core import numbers
from kumo.core.schemas import DisplayName, Email, StrictModel

Comparison = Literal["gt", "gte", "lt", "lte", "eq", "neq"]
Severity = Literal["info", "warning", "critical"]
AlertState = Literal["open", "acknowledged", "resolved"]
ResolvedReason = Literal["back_in_range", "rule_changed", "rule_disabled", "rule_deleted"]
Id = Annotated[str, StringConstraints(min_length=26, max_length=26)]
# The telemetry contract's metric names (kumo.telemetry.contract).
MetricName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]


# Strict: "30" or true is a mistake to report, not a number to guess.
def _storable(value: float) -> float:
    if not numbers.storable(value):
        raise ValueError(f"must be 0 or at least {numbers.MIN_MAGNITUDE:.0e} in magnitude")
    return value


Threshold = Annotated[
    float,
    Field(
        strict=True,
        allow_inf_nan=False,
        ge=-1e15,
        le=1e15,
        # What _storable checks, in the document's words.
        json_schema_extra={"anyOf": numbers.STORABLE_SCHEMA},
    ),
    AfterValidator(_storable),
]
DurationSeconds = Annotated[
    int,
    Field(
        strict=True,
        ge=0,
        le=86_400,
        description="How long the condition must hold (reading time) before an alert opens.",
    ),
]
MAX_EMAIL_RECIPIENTS = 10
EmailList = Annotated[list[Email], Field(min_length=1, max_length=MAX_EMAIL_RECIPIENTS)]


class Channels(StrictModel):
    email: EmailList | Literal["members"] | None = Field(
        default=None,
        description='Addresses to mail (at most 10), or "members": the org\'s owners and admins.',
    )
    websocket: bool = Field(
        default=False,
        description="Push to the org's `alerts` subscribers on the WebSocket API.",
    )


class CreateAlertRuleRequest(StrictModel):
    org_id: Id
    name: DisplayName
    metric: MetricName
    comparison: Comparison
    threshold: Threshold
    duration_seconds: DurationSeconds = 0
    device_id: Id | None = Field(default=None, description="One device; omitted: the whole org.")
    severity: Severity = "warning"
    channels: Channels = Field(default_factory=Channels)
    enabled: bool = True


class UpdateAlertRuleRequest(StrictModel):
    """Only the fields sent change; `device_id: null` makes the rule cover the whole org, and
    `channels: null` (or a channels object) replaces every channel.
    Changing the condition (metric, comparison, threshold, duration, device) or disabling the
    rule resolves its open alerts: they were judged by the old condition."""

    not_null = frozenset(
        {"name", "metric", "comparison", "threshold", "duration_seconds", "severity", "enabled"}
    )

    name: DisplayName | None = None
    metric: MetricName | None = None
    comparison: Comparison | None = None
    threshold: Threshold | None = None
    duration_seconds: DurationSeconds | None = None
    device_id: Id | None = None
    severity: Severity | None = None
    channels: Channels | None = None
    enabled: bool | None = None


class ChannelsOut(BaseModel):
    email: list[str] | Literal["members"] | None
    websocket: bool


class AlertRuleOut(BaseModel):
    id: str
    org_id: str
    name: str
    metric: str
    comparison: Comparison
    threshold: float
    duration_seconds: int
    device_id: str | None
    severity: Severity
    channels: ChannelsOut
    enabled: bool
    created_by: str
    created_at: str
    updated_at: str


class AlertOut(BaseModel):
    id: str
    org_id: str
    rule_id: str
    rule_name: str
    device_id: str
    metric: str
    comparison: Comparison
    threshold: float
    severity: Severity
    value: float
    triggered_at: str
    state: AlertState
    opened_at: str
    acknowledged_at: str | None
    acknowledged_by: str | None
    resolved_at: str | None
    resolved_value: float | None
    resolved_reason: ResolvedReason | None
    last_value: float | None
    last_value_at: str | None
