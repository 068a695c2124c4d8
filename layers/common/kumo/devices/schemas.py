"""Request and response bodies of /api/v1/devices and the device-facing /api/v1/device."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kumo.core.schemas import DisplayName, StrictModel

DeviceType = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z][a-z0-9_-]{0,39}$")
]
Connectivity = Literal["never_seen", "online", "offline"]
Resolution = Literal["raw", "1m", "1h", "1d"]


class RegisterDeviceRequest(StrictModel):
    org_id: Annotated[str, StringConstraints(min_length=26, max_length=26)]
    name: DisplayName
    type: DeviceType = "sensor"
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)
    certificate: bool = Field(
        default=False, description="Also create an IoT thing and certificate for MQTT."
    )


class UpdateDeviceRequest(StrictModel):
    name: DisplayName | None = None
    type: DeviceType | None = None
    metadata: dict[str, str | int | float | bool] | None = None
    enabled: bool | None = None


class DesiredConfigRequest(StrictModel):
    config: dict[str, Any]


class ReportedConfigRequest(StrictModel):
    version: int = Field(ge=0)
    config: dict[str, Any]


class DeviceOut(BaseModel):
    id: str
    org_id: str
    name: str
    type: str
    metadata: dict[str, Any]
    enabled: bool
    status: Connectivity
    key_hint: str
    thing_name: str | None
    last_seen_at: str | None
    config_version: int
    reported_version: int | None
    created_at: str
    updated_at: str


class CertificateOut(BaseModel):
    thing_name: str
    certificate_id: str
    certificate_pem: str
    private_key: str = Field(description="Shown once; Kumo does not keep it.")


class DeviceCreated(DeviceOut):
    api_key: str = Field(description="Shown once; only its hash is stored.")
    certificate: CertificateOut | None = None


class ApiKeyOut(BaseModel):
    id: str
    api_key: str


class DeviceConfigOut(BaseModel):
    version: int
    config: dict[str, Any]
    reported_version: int | None = None
    reported: dict[str, Any] | None = None


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


# --- commands -------------------------------------------------------------------------------

CommandName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
CommandStatus = Literal["queued", "delivered", "succeeded", "failed", "expired"]
# What a device may report: that it has the command, or how it ended.
CommandReport = Literal["delivered", "succeeded", "failed"]
MIN_COMMAND_TTL_SECONDS = 10
MAX_COMMAND_TTL_SECONDS = 86_400


class SendCommandRequest(StrictModel):
    name: CommandName
    params: dict[str, Any] = Field(
        default_factory=dict, description="A JSON object of at most 8 KiB."
    )
    ttl_seconds: int = Field(
        default=300,
        ge=MIN_COMMAND_TTL_SECONDS,
        le=MAX_COMMAND_TTL_SECONDS,
        description="How long the device has to pick the command up and answer it.",
    )


class CommandResultRequest(StrictModel):
    status: CommandReport
    result: dict[str, Any] | None = Field(
        default=None, description="A JSON object of at most 8 KiB; not with `delivered`."
    )
    error: str | None = Field(default=None, max_length=512, description="Not with `delivered`.")


class CommandOut(BaseModel):
    id: str
    org_id: str
    device_id: str
    name: str
    params: dict[str, Any]
    status: CommandStatus
    created_by: str
    created_at: str
    expires_at: str
    delivered_at: str | None
    completed_at: str | None
    result: dict[str, Any] | None
    error: str | None


# --- exports --------------------------------------------------------------------------------

MetricName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]
ExportStatus = Literal["queued", "running", "ready", "failed"]
# Epoch milliseconds, or ISO 8601 with a time zone (as the readings route takes them).
Moment = Annotated[int, Field(ge=0, strict=True)] | Annotated[str, StringConstraints(max_length=40)]
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
