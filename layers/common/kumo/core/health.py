"""Readiness: can this deployment reach the tables and queues it depends on?"""

from __future__ import annotations

import time
from collections.abc import Callable

import boto3

from kumo.core import aws
from kumo.core.config import get_settings


def _table_check(name: str) -> Callable[[], None]:
    def check() -> None:
        # A GetItem on a key that never exists: proves access without reading data.
        boto3.client("dynamodb").get_item(
            TableName=name, Key={"pk": {"S": "HEALTH"}, "sk": {"S": "HEALTH"}}
        )

    return check


def _queue_check(url: str) -> Callable[[], None]:
    def check() -> None:
        aws.sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])

    return check


def check_dependencies() -> dict[str, dict[str, object]]:
    settings = get_settings()
    checks = {
        "identity_table": _table_check(settings.identity_table),
        "orgs_table": _table_check(settings.orgs_table),
        "tasks_table": _table_check(settings.tasks_table),
        "mail_queue": _queue_check(settings.mail_queue_url),
        "webhook_queue": _queue_check(settings.webhook_queue_url),
    }
    results: dict[str, dict[str, object]] = {}
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            check()
            status = "ok"
        except Exception as error:  # any failure means "not ready", whatever its kind
            status = f"error: {type(error).__name__}"
        results[name] = {
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        }
    return results
