"""GET /api/v1/health: every table and queue of the template is checked, and one gone is a 503."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from kumo.core import health
from kumo.core.config import get_settings

from tests.support.template import resources

STAGE = "test"
QUEUE_BASE = "https://sqs.us-east-1.amazonaws.com/123456789012"


def _named(resource: dict[str, Any], key: str) -> str:
    return str(resource["Properties"][key]["Fn::Sub"]).replace("${Stage}", STAGE)


def _template_queues() -> set[str]:
    return {_named(queue, "QueueName") for queue in resources("AWS::SQS::Queue").values()}


@pytest.fixture
def every_queue(aws: None) -> None:
    sqs = boto3.client("sqs")
    for name in _template_queues():
        sqs.create_queue(QueueName=name)


def test_health_checks_every_table_and_queue_of_the_template() -> None:
    # Given the tables and queues the template defines
    tables = {_named(table, "TableName") for table in resources("AWS::DynamoDB::Table").values()}
    queues = {f"{QUEUE_BASE}/{name}" for name in _template_queues()}

    # When the health check lists what it checks
    checked = set(health._targets(get_settings()).values())

    # Then it is every one of them, and nothing else
    assert checked == tables | queues


@pytest.mark.usefixtures("every_queue")
def test_health_answers_ok_when_every_dependency_answers(call_api: Any) -> None:
    answer = call_api("core/health", "GET", "/api/v1/health")

    assert answer["statusCode"] == 200
    checks = answer["json"]["checks"]
    assert len(checks) == len(resources("AWS::DynamoDB::Table")) + len(_template_queues())
    assert {check["status"] for check in checks.values()} == {"ok"}


@pytest.mark.usefixtures("every_queue")
def test_health_answers_503_naming_a_queue_that_is_gone(call_api: Any) -> None:
    # Given the telemetry dead-letter queue is gone
    sqs = boto3.client("sqs")
    sqs.delete_queue(QueueUrl=f"{QUEUE_BASE}/kumo-{STAGE}-telemetry-dlq")

    # When the health check runs
    answer = call_api("core/health", "GET", "/api/v1/health")

    # Then it is a problem naming that queue, and only it, as failing
    assert answer["statusCode"] == 503
    failing = {name for name, check in answer["json"]["checks"].items() if check["status"] != "ok"}
    assert failing == {"telemetry_dead_letters"}
