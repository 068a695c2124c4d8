"""Request and response bodies of /api/v1/devices and the device-facing /api/v1/device."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from kumo.core.schemas import DisplayName, StrictModel

DeviceType = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z][a-z0-9_-]{0,39}$")
]
Connectivity = Literal["never_seen", "online", "offline"]


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
