"""Readiness: can this deployment reach every table and queue the platform depends on?

Each table gets a GetItem on a key that never exists (proves access, reads no data), each queue
a GetQueueAttributes (receives no message): the only two actions the health function is
granted (stacks/core.yaml). The checks run side by side, so the answer takes about as long as
the slowest one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import boto3

from kumo.core import aws
from kumo.core.config import Settings, get_settings


def _targets(settings: Settings) -> dict[str, str]:
    """Check name -> the table's name (`*_table`) or the queue's URL. Written out attribute by
    attribute, so that infra.access sees which settings (so which resources) this reads."""
    return {
        "identity_table": settings.identity_table,
        "orgs_table": settings.orgs_table,
        "tasks_table": settings.tasks_table,
        "devices_table": settings.devices_table,
        "telemetry_table": settings.telemetry_table,
        "alerts_table": settings.alerts_table,
        "connections_table": settings.connections_table,
        "media_table": settings.media_table,
        "chat_table": settings.chat_table,
        "mail_queue": settings.mail_queue_url,
        "mail_dead_letters": settings.mail_dead_letter_url,
        "webhook_queue": settings.webhook_queue_url,
        "webhook_dead_letters": settings.webhook_dead_letter_url,
        "export_queue": settings.export_queue_url,
        "export_dead_letters": settings.export_dead_letter_url,
        "telemetry_queue": settings.telemetry_queue_url,
        "telemetry_dead_letters": settings.telemetry_dead_letter_url,
        "archive_telemetry_dead_letters": settings.archive_telemetry_dead_letter_url,
        "command_results_queue": settings.command_results_queue_url,
        "command_results_dead_letters": settings.command_results_dead_letter_url,
        "config_shadow_queue": settings.config_shadow_queue_url,
        "config_shadow_dead_letters": settings.config_shadow_dead_letter_url,
        "config_reports_queue": settings.config_reports_queue_url,
        "config_reports_dead_letters": settings.config_reports_dead_letter_url,
        "media_uploads_queue": settings.media_uploads_queue_url,
        "media_uploads_dead_letters": settings.media_uploads_dead_letter_url,
        "fanout_queue": settings.fanout_queue_url,
        "fanout_dead_letters": settings.fanout_dead_letter_url,
        "sketch_compaction_queue": settings.sketch_compaction_queue_url,
        "sketch_compaction_dead_letters": settings.sketch_compaction_dead_letter_url,
    }


def _check(name: str, target: str) -> Callable[[], object]:
    if name.endswith("_table"):
        return lambda: _dynamodb().get_item(
            TableName=target, Key={"pk": {"S": "HEALTH"}, "sk": {"S": "HEALTH"}}
        )
    return lambda: aws.sqs().get_queue_attributes(QueueUrl=target, AttributeNames=["QueueArn"])


def _timed(check: Callable[[], object]) -> dict[str, object]:
    started = time.perf_counter()
    try:
        check()
        status = "ok"
    except Exception as error:  # any failure means "not ready", whatever its kind
        status = f"error: {type(error).__name__}"
    return {"status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 1)}


def check_dependencies() -> dict[str, dict[str, object]]:
    checks = {name: _check(name, target) for name, target in _targets(get_settings()).items()}
    # The clients are made here, once: boto3 is not safe to make them from several threads,
    # but it is to call them from several.
    _dynamodb()
    aws.sqs()
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(checks, pool.map(_timed, checks.values()), strict=True))


@cache
def _dynamodb() -> Any:
    return boto3.client("dynamodb")
