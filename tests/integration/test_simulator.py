"""The device simulator against the session's engine: its readings reach the readings API, and
it answers commands pushed the way Kumo pushes them (iot-data publish on .../commands)."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from infra.local.simulator import DeviceKey, Fleet, Totals, simulate
from tests.integration.conftest import Api, Outbox, signed_up_user

DEADLINE_SECONDS = 15.0
RATE, DURATION = 5.0, 3.0


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture(scope="module")
def sensor(api: Api, outbox: Outbox) -> dict[str, Any]:
    owner = signed_up_user(api, outbox, "sim-owner")
    token = owner["access_token"]
    org = api.post("/api/v1/orgs", token=token, json={"name": "Simulated Farm"})
    assert org.status_code == 201, org.text
    device = api.post(
        "/api/v1/devices", token=token, json={"org_id": org.json()["id"], "name": "sim-probe"}
    )
    assert device.status_code == 201, device.text
    return {"token": token, "org_id": org.json()["id"], "device": device.json()}


@pytest.fixture(scope="module")
def listener(endpoints: dict[str, Any], sensor: dict[str, Any]) -> Iterator[queue.Queue[Any]]:
    """What the device answers on .../commands/result, as a queue of decoded payloads."""
    answers: queue.Queue[Any] = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"it-sim-{uuid.uuid4().hex[:8]}",
        transport="websockets",
        protocol=mqtt.MQTTv311,
    )
    client.ws_set_options(
        path="/mqtt", headers={"Host": f"kumo.iot.{endpoints['region']}.localhost"}
    )
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, message: answers.put(json.loads(message.payload))
    gateway = urlsplit(endpoints["gateway"])
    client.connect(gateway.hostname or "127.0.0.1", gateway.port or 4566, keepalive=30)
    client.loop_start()
    client.subscribe(f"kumo/{sensor['org_id']}/{sensor['device']['id']}/commands/result", qos=1)
    assert subscribed.wait(DEADLINE_SECONDS)
    yield answers
    client.disconnect()  # an open MQTT connection would hold up the engine's shutdown
    client.loop_stop()


@pytest.fixture(scope="module")
def run(
    endpoints: dict[str, Any], sensor: dict[str, Any], listener: queue.Queue[Any]
) -> dict[str, Any]:
    """Three seconds of one simulated device at 5 readings/s, with two commands pushed to it:
    one already expired, then a ping."""
    device = sensor["device"]
    fleet = Fleet(
        org_id=sensor["org_id"],
        keys=[DeviceKey(device["id"], device["api_key"])],
        gateway=endpoints["gateway"],
        region=endpoints["region"],
        rate=RATE,
        duration=DURATION,
    )
    ready, outcome = threading.Event(), {}

    def play() -> None:
        try:
            outcome["totals"] = simulate(fleet, ready=ready, say=lambda _line: None)
        except BaseException as error:  # handed to the test thread
            outcome["error"] = error
            ready.set()

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    assert ready.wait(DEADLINE_SECONDS) and "error" not in outcome, outcome
    topic = f"kumo/{sensor['org_id']}/{device['id']}/commands"
    data = boto3.client(
        "iot-data",
        endpoint_url=endpoints["gateway"],
        region_name=endpoints["region"],
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    now = datetime.now(UTC)
    commands = {
        "expired": {"id": uuid.uuid4().hex, "name": "ping", "params": {}},
        "ping": {"id": uuid.uuid4().hex, "name": "ping", "params": {}},
    }
    commands["expired"]["expires_at"] = _iso(now - timedelta(seconds=1))
    commands["ping"]["expires_at"] = _iso(now + timedelta(minutes=1))
    for command in commands.values():
        data.publish(topic=topic, qos=1, payload=json.dumps(command).encode())
    thread.join(DURATION + DEADLINE_SECONDS)
    assert not thread.is_alive() and "error" not in outcome, outcome
    return {"totals": outcome["totals"], "commands": commands}


def test_simulated_readings_become_queryable(
    api: Api, sensor: dict[str, Any], run: dict[str, Any]
) -> None:
    totals: Totals = run["totals"]
    assert totals.readings >= RATE * DURATION * 0.6  # a loaded machine may run behind
    deadline = time.monotonic() + DEADLINE_SECONDS
    items: list[Any] = []
    while time.monotonic() < deadline:
        answer = api.get(
            f"/api/v1/devices/{sensor['device']['id']}/readings",
            token=sensor["token"],
            params={"metric": "temperature", "limit": 100},
        )
        assert answer.status_code == 200, answer.text
        items = answer.json()["items"]
        if len(items) >= totals.readings:
            break
        time.sleep(0.25)
    assert len(items) == totals.readings
    assert all(-20.0 <= item["value"] <= 45.0 for item in items)


def test_simulated_device_answers_a_ping_and_ignores_an_expired_command(
    run: dict[str, Any], listener: queue.Queue[Any]
) -> None:
    ping = run["commands"]["ping"]
    answer = listener.get(timeout=DEADLINE_SECONDS)
    assert answer["id"] == ping["id"] and answer["status"] == "succeeded"
    assert answer["result"]["pong"] is True and answer["error"] is None
    # The expired command was published first, so it was handled (ignored) before the ping.
    assert listener.empty() and run["totals"].ignored == 1
