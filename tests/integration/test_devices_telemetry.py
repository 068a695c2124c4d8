"""Telemetry end to end: MQTT publish → IoT topic rule → SQS → ingestion → readings API,
and the device HTTP route into the same storage."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import paho.mqtt.client as mqtt
import pytest

from tests.integration.conftest import Api, Outbox, signed_up_user

DEADLINE_SECONDS = 30.0


@pytest.fixture(scope="module")
def fleet(api: Api, outbox: Outbox) -> dict[str, Any]:
    owner = signed_up_user(api, outbox, "fleet")
    token = owner["access_token"]
    org_id = api.post("/api/v1/orgs", token=token, json={"name": "Fleet"}).json()["id"]
    devices = [
        api.post(
            "/api/v1/devices", token=token, json={"org_id": org_id, "name": f"probe-{n}"}
        ).json()
        for n in range(2)
    ]
    outsider = signed_up_user(api, outbox, "outsider")["access_token"]
    return {"token": token, "org_id": org_id, "devices": devices, "outsider": outsider}


def _publish(client: mqtt.Client, org_id: str, device_id: str, payload: Any) -> None:
    info = client.publish(f"kumo/{org_id}/{device_id}/telemetry", json.dumps(payload), qos=1)
    info.wait_for_publish(timeout=10)


def _points(api: Api, token: str, device_id: str, metric: str, **params: Any) -> Any:
    return api.get(
        f"/api/v1/devices/{device_id}/readings",
        token=token,
        params={"metric": metric, **params},
    )


def _wait_points(api: Api, token: str, device_id: str, metric: str, count: int) -> list[Any]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        answer = _points(api, token, device_id, metric)
        assert answer.status_code == 200, answer.text
        items: list[Any] = answer.json()["items"]
        if len(items) >= count:
            return items
        time.sleep(0.25)
    raise AssertionError(f"fewer than {count} {metric} points within {DEADLINE_SECONDS} s")


def test_published_reading_becomes_queryable(
    api: Api, fleet: dict[str, Any], mqtt_client: mqtt.Client
) -> None:
    device = fleet["devices"][0]
    now_ms = int(time.time() * 1000)
    _publish(mqtt_client, fleet["org_id"], device["id"], {"ts": now_ms, "metrics": {"temp": 21.5}})
    points = _wait_points(api, fleet["token"], device["id"], "temp", 1)
    assert points[0]["value"] == 21.5
    latest = api.get(f"/api/v1/devices/{device['id']}/latest", token=fleet["token"]).json()
    assert latest["metrics"]["temp"]["value"] == 21.5
    seen = api.get(f"/api/v1/devices/{device['id']}", token=fleet["token"]).json()
    assert seen["status"] == "online" and seen["last_seen_at"]


def test_duplicate_publish_stores_one_reading(
    api: Api, fleet: dict[str, Any], mqtt_client: mqtt.Client
) -> None:
    device = fleet["devices"][0]
    payload = {"ts": int(time.time() * 1000), "metrics": {"dup_probe": 7}}
    _publish(mqtt_client, fleet["org_id"], device["id"], payload)
    _publish(mqtt_client, fleet["org_id"], device["id"], payload)
    _wait_points(api, fleet["token"], device["id"], "dup_probe", 1)
    # A marker published after both is stored after them: once it is there, both were handled.
    _publish(
        mqtt_client,
        fleet["org_id"],
        device["id"],
        {"ts": int(time.time() * 1000) + 1, "metrics": {"dup_marker": 1}},
    )
    _wait_points(api, fleet["token"], device["id"], "dup_marker", 1)
    assert len(_points(api, fleet["token"], device["id"], "dup_probe").json()["items"]) == 1


def test_bad_reading_is_rejected_and_its_neighbours_kept(
    api: Api, fleet: dict[str, Any], mqtt_client: mqtt.Client
) -> None:
    device = fleet["devices"][0]
    now_ms = int(time.time() * 1000)
    batch = {
        "readings": [
            {"ts": now_ms - 2000, "metrics": {"mixed": 1.0}},
            {"ts": now_ms - 1000, "metrics": {"mixed": "hot"}},
            {"ts": now_ms, "metrics": {"mixed": 3.0}},
        ]
    }
    _publish(mqtt_client, fleet["org_id"], device["id"], batch)
    points = _wait_points(api, fleet["token"], device["id"], "mixed", 2)
    assert sorted(p["value"] for p in points) == [1.0, 3.0]


def test_http_readings_land_on_the_key_owner_only(api: Api, fleet: dict[str, Any]) -> None:
    first, second = fleet["devices"]
    answer = api.post(
        "/api/v1/device/readings",
        token=first["api_key"],
        json={"readings": [{"metrics": {"http_probe": 5}}, {"metrics": {"http_probe": "x"}}]},
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 1 and len(answer.json()["rejected"]) == 1
    assert _wait_points(api, fleet["token"], first["id"], "http_probe", 1)[0]["value"] == 5
    assert _points(api, fleet["token"], second["id"], "http_probe").json()["items"] == []
    bad = api.post("/api/v1/device/readings", token=first["api_key"], json={"metrics": {}})
    assert bad.status_code == 422


def test_rollups_and_other_org_isolation(api: Api, fleet: dict[str, Any]) -> None:
    device = fleet["devices"][1]
    now_ms = int(time.time() * 1000)
    readings = [{"ts": now_ms - i * 1000, "metrics": {"load": float(i)}} for i in range(5)]
    answer = api.post(
        "/api/v1/device/readings", token=device["api_key"], json={"readings": readings}
    )
    assert answer.status_code == 202, answer.text
    hourly = _points(api, fleet["token"], device["id"], "load", resolution="1h").json()["items"]
    assert sum(p["count"] for p in hourly) == 5
    assert sum(p["sum"] for p in hourly) == 10.0
    assert min(p["min"] for p in hourly) == 0.0 and max(p["max"] for p in hourly) == 4.0
    outsider = _points(api, fleet["outsider"], device["id"], "load")
    assert outsider.status_code == 404


def test_message_for_an_unknown_device_is_dropped(
    api: Api, fleet: dict[str, Any], mqtt_client: mqtt.Client
) -> None:
    # A topic naming another org than the device's own is dropped, not stored under it.
    device = fleet["devices"][1]
    _publish(mqtt_client, "01AAAAAAAAAAAAAAAAAAAAAAAA", device["id"], {"metrics": {"spoof": 1}})
    _publish(mqtt_client, fleet["org_id"], device["id"], {"metrics": {"spoof_marker": 1}})
    _wait_points(api, fleet["token"], device["id"], "spoof_marker", 1)
    assert _points(api, fleet["token"], device["id"], "spoof").json()["items"] == []


def test_first_message_puts_device_status_changed_on_the_bus(
    api: Api, fleet: dict[str, Any], endpoints: dict[str, Any]
) -> None:
    # Given a rule of the test's own on Kumo's bus, delivering into a queue
    aws = {
        "endpoint_url": endpoints["gateway"],
        "region_name": endpoints["region"],
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    sqs, events = boto3.client("sqs", **aws), boto3.client("events", **aws)
    name = f"it-status-{uuid.uuid4().hex[:8]}"
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    bus = f"kumo-{endpoints['stage']}"
    pattern = {"source": ["kumo.devices"], "detail-type": ["device.status_changed"]}
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule=name,
        EventBusName=bus,
        Targets=[{"Id": "q", "Arn": queue_arn["Attributes"]["QueueArn"]}],
    )
    try:
        # When a new device sends its first reading
        device = api.post(
            "/api/v1/devices",
            token=fleet["token"],
            json={"org_id": fleet["org_id"], "name": "newcomer"},
        ).json()
        sent = api.post(
            "/api/v1/device/readings", token=device["api_key"], json={"metrics": {"t": 1}}
        )
        assert sent.status_code == 202, sent.text

        # Then the bus carries its status change to online
        deadline = time.monotonic() + DEADLINE_SECONDS
        found: list[dict[str, Any]] = []
        while not found:
            assert time.monotonic() < deadline, "no device.status_changed event"
            for message in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get(
                "Messages", []
            ):
                event = json.loads(message["Body"])
                if event["detail"]["device_id"] == device["id"]:
                    found.append(event)
        assert found[0]["detail"]["status"] == "online"
        assert found[0]["detail"]["org_id"] == fleet["org_id"]
    finally:
        events.remove_targets(Rule=name, EventBusName=bus, Ids=["q"])
        events.delete_rule(Name=name, EventBusName=bus)
        sqs.delete_queue(QueueUrl=queue_url)
