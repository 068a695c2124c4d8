"""CSV exports end to end: readings posted with a device key → POST /exports → SQS → the build
worker → S3 → a pre-signed download over real HTTP; refusals and other orgs."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.integration.conftest import Api, Outbox, signed_up_user

DEADLINE_SECONDS = 60.0
MINUTE_MS = 60_000


@pytest.fixture(scope="module")
def fleet(api: Api, outbox: Outbox) -> dict[str, Any]:
    owner = signed_up_user(api, outbox, "exporter")
    token = owner["access_token"]
    org_id = api.post("/api/v1/orgs", token=token, json={"name": "Exports"}).json()["id"]
    device = api.post("/api/v1/devices", token=token, json={"org_id": org_id, "name": "probe"})
    assert device.status_code == 201, device.text
    outsider = signed_up_user(api, outbox, "stranger")["access_token"]
    return {"token": token, "org_id": org_id, "device": device.json(), "outsider": outsider}


@pytest.fixture(scope="module")
def readings(api: Api, fleet: dict[str, Any]) -> dict[str, Any]:
    """Readings of two metrics a minute apart, sent with the device's key; humidity skips
    every third minute."""
    start = (int(time.time() * 1000) // (60 * MINUTE_MS) - 1) * 60 * MINUTE_MS
    sent = []
    for i in range(30):
        metrics: dict[str, float] = {"temp": 20 + i / 4}
        if i % 3:
            metrics["hum"] = 40.0 + i
        sent.append({"ts": start + i * MINUTE_MS, "metrics": metrics})
    answer = api.post(
        "/api/v1/device/readings", token=fleet["device"]["api_key"], json={"readings": sent}
    )
    assert answer.status_code == 202 and answer.json()["accepted"] == 30, answer.text
    return {"start": start, "end": start + 29 * MINUTE_MS, "sent": sent}


def _exports(fleet: dict[str, Any]) -> str:
    return f"/api/v1/devices/{fleet['device']['id']}/exports"


def _wait_ready(api: Api, token: str, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        answer = api.get(location, token=token)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert body["status"] != "failed", body
        if body["status"] == "ready":
            return body
        time.sleep(0.25)
    raise AssertionError(f"export not ready within {DEADLINE_SECONDS} s")


def _download(export: dict[str, Any]) -> list[list[str]]:
    fetched = requests.get(export["download_url"], timeout=30)
    assert fetched.status_code == 200, fetched.text
    return list(csv.reader(io.StringIO(fetched.content.decode())))


def test_raw_export_is_built_and_downloaded(
    api: Api, fleet: dict[str, Any], readings: dict[str, Any]
) -> None:
    # When the owner asks for a raw export of both metrics
    created = api.post(
        _exports(fleet),
        token=fleet["token"],
        json={"from": readings["start"], "to": readings["end"], "metrics": ["temp", "hum"]},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert created.status_code == 202, created.text
    assert created.json()["status"] == "queued"
    location = created.headers["Location"]
    assert location.endswith(f"/exports/{created.json()['id']}")

    # Then it becomes ready and the pre-signed link serves the CSV
    export = _wait_ready(api, fleet["token"], location)
    assert export["row_count"] == 30 and export["byte_size"] > 0
    assert export["download_url"] and export["expires_at"]
    rows = _download(export)
    assert rows[0] == ["timestamp", "temp", "hum"]
    assert len(rows) == 31
    first, third = rows[1], rows[3]
    assert first[0].endswith("Z") and first[1:] == ["20", ""]
    assert third[1:] == ["20.5", "42"]
    assert sum(1 for r in rows[1:] if r[2] == "") == 10
    # And it is in the device's list
    listed = api.get(_exports(fleet), token=fleet["token"]).json()["items"]
    assert export["id"] in [e["id"] for e in listed]


def test_rollup_export(api: Api, fleet: dict[str, Any], readings: dict[str, Any]) -> None:
    created = api.post(
        _exports(fleet),
        token=fleet["token"],
        json={
            "from": readings["start"],
            "to": readings["end"],
            "metrics": ["temp"],
            "resolution": "1h",
        },
    )
    assert created.status_code == 202, created.text
    export = _wait_ready(api, fleet["token"], created.headers["Location"])
    rows = _download(export)
    assert rows[0] == ["timestamp", "temp_count", "temp_sum", "temp_min", "temp_max", "temp_avg"]
    assert len(rows) == 2
    temps = [r["metrics"]["temp"] for r in readings["sent"]]
    count, total, low, high, avg = (float(v) for v in rows[1][1:])
    assert (count, low, high) == (30, min(temps), max(temps))
    assert total == pytest.approx(sum(temps)) and avg == pytest.approx(sum(temps) / 30)


def test_retried_post_with_the_same_key_builds_once(
    api: Api, fleet: dict[str, Any], readings: dict[str, Any]
) -> None:
    body = {"from": readings["start"], "to": readings["end"], "resolution": "1d"}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post(_exports(fleet), token=fleet["token"], json=body, headers=headers)
    again = api.post(_exports(fleet), token=fleet["token"], json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    _wait_ready(api, fleet["token"], first.headers["Location"])


@pytest.mark.parametrize(
    "body",
    [
        {"from": 2_000_000_000_000, "to": 1_000_000_000_000},
        {"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        {"from": "last week", "to": "2026-01-02T00:00:00Z"},
        {"from": 0, "to": 1000, "metrics": ["no spaces"]},
    ],
)
def test_bad_ranges_are_422_and_store_nothing(
    api: Api, fleet: dict[str, Any], body: dict[str, Any]
) -> None:
    before = api.get(_exports(fleet), token=fleet["token"], params={"limit": 100}).json()
    answer = api.post(_exports(fleet), token=fleet["token"], json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.json()["errors"]
    after = api.get(_exports(fleet), token=fleet["token"], params={"limit": 100}).json()
    assert [e["id"] for e in after["items"]] == [e["id"] for e in before["items"]]


def test_another_org_gets_404(api: Api, fleet: dict[str, Any], readings: dict[str, Any]) -> None:
    mine = api.get(_exports(fleet), token=fleet["token"]).json()["items"]
    assert mine, "the tests above made exports"
    stranger = fleet["outsider"]
    body = {"from": readings["start"], "to": readings["end"]}
    assert api.post(_exports(fleet), token=stranger, json=body).status_code == 404
    assert api.get(_exports(fleet), token=stranger).status_code == 404
    one = f"{_exports(fleet)}/{mine[0]['id']}"
    assert api.get(one, token=stranger).status_code == 404
    # A device key reaches only /api/v1/device/*
    assert api.get(one, token=fleet["device"]["api_key"]).status_code == 403


# --- the engine -----------------------------------------------------------------------------


def test_data_bucket_expires_exports_after_a_week(aws: Any, endpoints: dict[str, Any]) -> None:
    bucket = f"kumo-{endpoints['stage']}-data-000000000000"
    rules = aws("s3").get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    (exports,) = [r for r in rules if r["ID"] == "expire-exports"]
    assert exports["Filter"]["Prefix"] == "exports/" and exports["Expiration"]["Days"] == 7


def test_exports_queue_dead_letters_after_three_receives(
    aws: Any, endpoints: dict[str, Any]
) -> None:
    sqs = aws("sqs")
    url = sqs.get_queue_url(QueueName=f"kumo-{endpoints['stage']}-exports")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    policy = json.loads(attributes["RedrivePolicy"])
    assert int(policy["maxReceiveCount"]) == 3
    assert policy["deadLetterTargetArn"].endswith(f"kumo-{endpoints['stage']}-exports-dlq")


@pytest.fixture
def scratch_bucket_stack(aws: Any) -> Iterator[str]:
    name = f"kumo-contract-{uuid.uuid4().hex[:8]}"
    bucket = f"{name}-bucket"
    body = {
        "Resources": {
            "Bucket": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "BucketName": bucket,
                    "LifecycleConfiguration": {
                        "Rules": [
                            {
                                "Id": "expire",
                                "Status": "Enabled",
                                "Prefix": "x/",
                                "ExpirationInDays": 7,
                            }
                        ]
                    },
                },
            }
        }
    }
    cloudformation = aws("cloudformation")
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(body))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        if status.endswith("COMPLETE") or status.endswith("FAILED"):
            break
        time.sleep(0.2)
    yield bucket
    cloudformation.delete_stack(StackName=name)


def test_gap_template_bucket_lifecycle_is_ignored(aws: Any, scratch_bucket_stack: str) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as missing:
        aws("s3").get_bucket_lifecycle_configuration(Bucket=scratch_bucket_stack)
    assert missing.value.response["Error"]["Code"] == "NoSuchLifecycleConfiguration", (
        "MiniStack now applies LifecycleConfiguration: remove the lifecycle step of "
        "infra/local/stack.py:apply_engine_workarounds and this test"
    )
