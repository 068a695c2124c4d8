"""Settings, each read from its own environment variable at first use.

So that a function's environment can hold only the variables its code reads (infra/environment.py
finds them from its imports), nothing here reads a variable eagerly: a missing one fails loudly
when, and only when, the code that needs it runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import Any, Self, overload


class ConfigurationError(RuntimeError):
    """The function was deployed without a variable it needs."""


class Env[T]:
    """One setting: the variable it comes from, its default (None: required) and its parser.

    A non-data descriptor: the parsed value is stored on the instance at first read, so each
    later read is a plain attribute lookup.
    """

    @overload
    def __init__(self: Env[str], variable: str, default: str | None = None) -> None: ...
    @overload
    def __init__(
        self, variable: str, default: str | None = None, *, parse: Callable[[str], T]
    ) -> None: ...
    def __init__(
        self, variable: str, default: str | None = None, *, parse: Callable[[str], Any] = str
    ) -> None:
        self.variable = variable
        self.default = default
        self.parse: Callable[[str], T] = parse
        self.attribute = variable.lower()

    def __set_name__(self, owner: type, name: str) -> None:
        self.attribute = name

    @overload
    def __get__(self, instance: None, owner: type) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: type) -> T: ...
    def __get__(self, instance: object | None, owner: type) -> Self | T:
        if instance is None:
            return self
        raw = os.environ.get(self.variable) or self.default
        if raw is None:
            raise ConfigurationError(f"missing environment variable: {self.variable}")
        value = self.parse(raw)
        instance.__dict__[self.attribute] = value
        return value


def _flag(raw: str) -> bool:
    return raw == "true"


def _url(raw: str) -> str:
    return raw.rstrip("/")


class Settings:
    """Every setting Kumo reads; `Env` names the variable behind each."""

    stage = Env("KUMO_STAGE")
    identity_table = Env("IDENTITY_TABLE")
    orgs_table = Env("ORGS_TABLE")
    tasks_table = Env("TASKS_TABLE")
    devices_table = Env("DEVICES_TABLE")
    telemetry_table = Env("TELEMETRY_TABLE")
    alerts_table = Env("ALERTS_TABLE")
    connections_table = Env("CONNECTIONS_TABLE")
    media_table = Env("MEDIA_TABLE")
    chat_table = Env("CHAT_TABLE")
    # A heartbeat counts this long: past it, its sender is offline whatever the last one said,
    # so a $disconnect that never came (it is best effort) cannot keep anyone online.
    presence_window_seconds = Env("PRESENCE_WINDOW_SECONDS", "45", parse=int)
    # Uploads (quarantine/) and the files Kumo judged fit to serve (media/): ADR 28.
    media_bucket = Env("MEDIA_BUCKET")
    # Only the validator's source mapping and the health check name these (kumo.core.health).
    media_uploads_queue_url = Env("MEDIA_UPLOADS_QUEUE_URL")
    media_uploads_dead_letter_url = Env("MEDIA_UPLOADS_DLQ_URL")
    # Stored bytes per org, until plans set it (the billing context).
    media_bytes_per_org = Env("MEDIA_BYTES_PER_ORG", str(1024**3), parse=int)
    # Telemetry archives (archive/) and CSV exports (exports/).
    data_bucket = Env("DATA_BUCKET")
    # Where functions post to WebSocket connections: https://<api>.execute-api.<region>.
    # amazonaws.com/<stage> on AWS, the engine's /_aws/execute-api/<api>/<stage> locally.
    websocket_management_url = Env("WEBSOCKET_MANAGEMENT_URL")
    # Shards of a big channel's fan-out (kumo.realtime.shards); only its consumer's source
    # mapping and the health check name the dead-letter queue.
    fanout_queue_url = Env("FANOUT_QUEUE_URL")
    # Sketches whose operations fill a segment to compact (kumo.chat.segments).
    sketch_compaction_queue_url = Env("SKETCH_COMPACTION_QUEUE_URL")
    sketch_compaction_dead_letter_url = Env("SKETCH_COMPACTION_DLQ_URL")
    fanout_dead_letter_url = Env("FANOUT_DLQ_URL")
    subscriptions_per_connection = Env("SUBSCRIPTIONS_PER_CONNECTION", "50", parse=int)
    mail_queue_url = Env("MAIL_QUEUE_URL")
    mail_dead_letter_url = Env("MAIL_DLQ_URL")
    webhook_queue_url = Env("WEBHOOK_QUEUE_URL")
    webhook_dead_letter_url = Env("WEBHOOK_DLQ_URL")
    # Ids of CSV exports to build (kumo.telemetry.exports).
    export_queue_url = Env("EXPORT_QUEUE_URL")
    # Queues only their event source mappings and the health check name (kumo.core.health).
    export_dead_letter_url = Env("EXPORT_DLQ_URL")
    telemetry_queue_url = Env("TELEMETRY_QUEUE_URL")
    telemetry_dead_letter_url = Env("TELEMETRY_DLQ_URL")
    archive_telemetry_dead_letter_url = Env("ARCHIVE_TELEMETRY_DLQ_URL")
    command_results_queue_url = Env("COMMAND_RESULTS_QUEUE_URL")
    command_results_dead_letter_url = Env("COMMAND_RESULTS_DLQ_URL")
    config_reports_queue_url = Env("CONFIG_REPORTS_QUEUE_URL")
    config_reports_dead_letter_url = Env("CONFIG_REPORTS_DLQ_URL")
    config_shadow_dead_letter_url = Env("CONFIG_SHADOW_DLQ_URL")
    mail_sender = Env("MAIL_SENDER")
    # Secrets Manager ids (name or ARN) of the signing key sets, never the keys (ADR 0021).
    jwt_key_secret_id = Env("JWT_KEY_SECRET_ID")
    cursor_key_secret_id = Env("CURSOR_KEY_SECRET_ID")
    # How long a container keeps a key set before reading it again: a rotation's delay.
    signing_key_cache_seconds = Env("SIGNING_KEY_CACHE_SECONDS", "300", parse=int)
    app_url = Env("APP_URL", parse=_url)
    # What comes before the stage in the API's URL path: empty on AWS, the engine's
    # /_aws/execute-api/<api id> locally (kumo.identity.http.refresh_cookie_path).
    api_path_prefix = Env("API_PATH_PREFIX", "")
    access_token_seconds = Env("ACCESS_TOKEN_SECONDS", "900", parse=int)
    refresh_token_seconds = Env("REFRESH_TOKEN_SECONDS", "3600", parse=int)
    refresh_token_remember_seconds = Env(
        "REFRESH_TOKEN_REMEMBER_SECONDS", str(30 * 24 * 3600), parse=int
    )
    webhook_max_attempts = Env("WEBHOOK_MAX_ATTEMPTS", "5", parse=int)
    webhook_backoff_seconds = Env("WEBHOOK_BACKOFF_SECONDS", "30", parse=int)
    webhook_timeout_seconds = Env("WEBHOOK_TIMEOUT_SECONDS", "10", parse=float)
    # Only the local stack and tests call receivers on 127.0.0.1; AWS deployments never do.
    webhook_allow_loopback = Env("WEBHOOK_ALLOW_LOOPBACK", "false", parse=_flag)
    scheduled_tasks_per_user = Env("SCHEDULED_TASKS_PER_USER", "50", parse=int)
    schedule_min_interval_seconds = Env("SCHEDULE_MIN_INTERVAL_SECONDS", "60", parse=int)
    devices_per_org = Env("DEVICES_PER_ORG", "100", parse=int)
    alert_rules_per_org = Env("ALERT_RULES_PER_ORG", "100", parse=int)
    event_bus_name = Env("EVENT_BUS_NAME")
    # Silence after which the offline job marks a device offline.
    device_offline_seconds = Env("DEVICE_OFFLINE_SECONDS", "300", parse=int)
    # IoT Core's data endpoint host (`<prefix>-ats.iot.<region>.amazonaws.com`), where
    # functions publish device commands on AWS; empty on the local engine, which needs none.
    iot_data_endpoint = Env("IOT_DATA_ENDPOINT", "")
    # Devices whose config shadow could not be written when the config was set: retried there.
    config_shadow_queue_url = Env("CONFIG_SHADOW_QUEUE_URL")
    # Stream consumers answer a partial batch failure (AWS); false raises instead and fails
    # the whole batch, for an engine that ignores partial responses on streams (ADR 14).
    stream_partial_failures = Env(
        "STREAM_PARTIAL_FAILURES", "true", parse=lambda raw: raw != "false"
    )

    @property
    def region(self) -> str:
        # Set by the Lambda runtime itself, so it is never part of a function's template.
        return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def variables() -> dict[str, Env[Any]]:
    """Setting attribute -> its descriptor, for the tools that generate environments."""
    return {name: value for name, value in vars(Settings).items() if isinstance(value, Env)}


@cache
def get_settings() -> Settings:
    return Settings()
