"""Settings read once from the environment; a missing variable fails at first use, loudly."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


class ConfigurationError(RuntimeError):
    """The function was deployed without a variable it needs."""


def _require(name: str, missing: list[str]) -> str:
    value = os.environ.get(name, "")
    if not value:
        missing.append(name)
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    stage: str
    region: str
    identity_table: str
    orgs_table: str
    tasks_table: str
    devices_table: str
    telemetry_table: str
    alerts_table: str
    # Telemetry archives (archive/) and CSV exports (exports/).
    data_bucket: str
    connections_table: str
    # Where functions post to WebSocket connections: https://<api>.execute-api.<region>.
    # amazonaws.com/<stage> on AWS, the engine's /_aws/execute-api/<api>/<stage> locally.
    websocket_management_url: str
    subscriptions_per_connection: int
    mail_queue_url: str
    mail_dead_letter_url: str
    webhook_queue_url: str
    webhook_dead_letter_url: str
    # Ids of CSV exports to build (kumo.devices.exports).
    export_queue_url: str
    mail_sender: str
    jwt_secret: str
    app_url: str
    access_token_seconds: int
    refresh_token_seconds: int
    refresh_token_remember_seconds: int
    webhook_max_attempts: int
    webhook_backoff_seconds: int
    webhook_timeout_seconds: float
    # Only the local stack and tests call receivers on 127.0.0.1; AWS deployments never do.
    webhook_allow_loopback: bool
    scheduled_tasks_per_user: int
    schedule_min_interval_seconds: int
    devices_per_org: int
    alert_rules_per_org: int
    event_bus_name: str
    # Silence after which the offline job marks a device offline.
    device_offline_seconds: int
    # IoT Core's data endpoint host (`<prefix>-ats.iot.<region>.amazonaws.com`), where
    # functions publish device commands on AWS; empty on the local engine, which needs none.
    iot_data_endpoint: str
    # Devices whose config shadow could not be written when the config was set: retried there.
    config_shadow_queue_url: str
    # Stream consumers answer a partial batch failure (AWS); false raises instead and fails
    # the whole batch, for an engine that ignores partial responses on streams (ADR 14).
    stream_partial_failures: bool


@cache
def get_settings() -> Settings:
    missing: list[str] = []
    settings = Settings(
        stage=_require("KUMO_STAGE", missing),
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        identity_table=_require("IDENTITY_TABLE", missing),
        orgs_table=_require("ORGS_TABLE", missing),
        tasks_table=_require("TASKS_TABLE", missing),
        devices_table=_require("DEVICES_TABLE", missing),
        telemetry_table=_require("TELEMETRY_TABLE", missing),
        alerts_table=_require("ALERTS_TABLE", missing),
        data_bucket=_require("DATA_BUCKET", missing),
        connections_table=_require("CONNECTIONS_TABLE", missing),
        websocket_management_url=_require("WEBSOCKET_MANAGEMENT_URL", missing),
        subscriptions_per_connection=int(os.environ.get("SUBSCRIPTIONS_PER_CONNECTION", "50")),
        mail_queue_url=_require("MAIL_QUEUE_URL", missing),
        mail_dead_letter_url=_require("MAIL_DLQ_URL", missing),
        webhook_queue_url=_require("WEBHOOK_QUEUE_URL", missing),
        webhook_dead_letter_url=_require("WEBHOOK_DLQ_URL", missing),
        export_queue_url=_require("EXPORT_QUEUE_URL", missing),
        mail_sender=_require("MAIL_SENDER", missing),
        jwt_secret=_require("JWT_SECRET", missing),
        app_url=_require("APP_URL", missing).rstrip("/"),
        access_token_seconds=int(os.environ.get("ACCESS_TOKEN_SECONDS", "900")),
        refresh_token_seconds=int(os.environ.get("REFRESH_TOKEN_SECONDS", "3600")),
        refresh_token_remember_seconds=int(
            os.environ.get("REFRESH_TOKEN_REMEMBER_SECONDS", str(30 * 24 * 3600))
        ),
        webhook_max_attempts=int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", "5")),
        webhook_backoff_seconds=int(os.environ.get("WEBHOOK_BACKOFF_SECONDS", "30")),
        webhook_timeout_seconds=float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", "10")),
        webhook_allow_loopback=os.environ.get("WEBHOOK_ALLOW_LOOPBACK", "false") == "true",
        scheduled_tasks_per_user=int(os.environ.get("SCHEDULED_TASKS_PER_USER", "50")),
        schedule_min_interval_seconds=int(os.environ.get("SCHEDULE_MIN_INTERVAL_SECONDS", "60")),
        devices_per_org=int(os.environ.get("DEVICES_PER_ORG", "100")),
        alert_rules_per_org=int(os.environ.get("ALERT_RULES_PER_ORG", "100")),
        event_bus_name=_require("EVENT_BUS_NAME", missing),
        device_offline_seconds=int(os.environ.get("DEVICE_OFFLINE_SECONDS", "300")),
        iot_data_endpoint=os.environ.get("IOT_DATA_ENDPOINT", ""),
        config_shadow_queue_url=_require("CONFIG_SHADOW_QUEUE_URL", missing),
        stream_partial_failures=os.environ.get("STREAM_PARTIAL_FAILURES", "true") != "false",
    )
    if missing:
        raise ConfigurationError(f"missing environment variables: {', '.join(sorted(missing))}")
    if len(settings.jwt_secret) < 32:
        raise ConfigurationError("JWT_SECRET must be at least 32 characters")
    return settings
