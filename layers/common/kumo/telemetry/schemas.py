"""Request and response bodies of the telemetry routes: readings, latest values, archives,
exports, and what the device-facing POST /api/v1/device/readings answers."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kumo.core.schemas import StrictModel
from kumo.telemetry.contract import METRIC_NAME

Resolution = Literal["raw", "1m", "1h", "1d"]


class ReadingsAccepted(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]


class PointOut(BaseModel):
    ts: str
    value: float | None = None
    count: int | None = None
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    avg: float | None = None


class LatestOut(BaseModel):
    device_id: str
    metrics: dict[str, dict[str, Any]]


class ArchiveOut(BaseModel):
    day: str  # YYYY-MM-DD (UTC) of the readings inside
    key: str
    size: int  # bytes, compressed
    url: str  # pre-signed GET, valid for url_expires_in seconds
    url_expires_in: int


# --- exports --------------------------------------------------------------------------------

METRIC_PATTERN: Final = f"^{METRIC_NAME.pattern}$"
# A moment as the readings, exports and archives routes take it: epoch milliseconds, or an
# ISO 8601 date and time with a time zone; the calendar is checked when it is read.
MOMENT_PATTERN: Final = (
    r"^([0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}"
    r"(:[0-9]{2}(\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2}))$"
)
DAY_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
MetricName = Annotated[str, StringConstraints(pattern=METRIC_PATTERN)]
ExportStatus = Literal["queued", "running", "ready", "failed"]
MomentText = Annotated[str, StringConstraints(max_length=40, pattern=MOMENT_PATTERN)]
Moment = Annotated[int, Field(ge=0, strict=True)] | MomentText
MAX_EXPORT_METRICS = 32


class ExportRequest(StrictModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: Moment = Field(alias="from", description="Epoch ms or ISO 8601; included.")
    end: Moment = Field(alias="to", description="Epoch ms or ISO 8601; included.")
    metrics: list[MetricName] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_EXPORT_METRICS,
        description="Columns, in this order; left out, every metric the device has sent.",
    )
    resolution: Resolution = "raw"


class ExportOut(BaseModel):
    id: str
    org_id: str
    device_id: str
    status: ExportStatus
    start: str = Field(serialization_alias="from")
    end: str = Field(serialization_alias="to")
    resolution: Resolution
    metrics: list[str]
    created_by: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    row_count: int | None
    byte_size: int | None
    error: str | None
    available_until: str = Field(description="When the export and its file are deleted.")
    download_url: str | None = Field(
        default=None, description="Pre-signed GET of the CSV, when ready; valid 15 minutes."
    )
    expires_at: str | None = Field(default=None, description="When download_url stops working.")
