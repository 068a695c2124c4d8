"""Device commands end to end: pushed over MQTT and answered through the results topic rule,
polled and answered over HTTP, expiry, and tenant isolation."""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.conftest import Api, Outbox, signed_up_user

DEADLINE_SECONDS = 30.0
# The shortest time to live a command may have; expiry tests wait it out.
MIN_TTL_SECONDS = 10
PROBLEM = "urn:kumo:problem:"


@pytest.fixture(scope="module")
def fleet(api: Api, outbox: Outbox) -> dict[str, Any]:
    owner = signed_up_user(api, outbox, "commander")
    token = owner["access_token"]
    org_id = api.post("/api/v1/orgs", token=token, json={"name": "Commanded"}).json()["id"]
    devices = [
        api.post(
            "/api/v1/devices", token=token, json={"org_id": org_id, "name": f"actuator-{n}"}
        ).json()
        for n in range(2)
    ]
    outsider = signed_up_user(api, outbox, "stranger")["access_token"]
    return {"token": token, "org_id": org_id, "devices": devices, "outsider": outsider}


class Subscriber:
    """An MQTT client over WebSocket, as a device would be, collecting what it receives."""

    def __init__(self, endpoints: dict[str, Any]) -> None:
        gateway = urlsplit(endpoints["gateway"])
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._subacks: queue.Queue[Any] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"it-cmd-{uuid.uuid4().hex[:8]}",
            transport="websockets",
            protocol=mqtt.MQTTv311,
        )
        # The engine serves MQTT over WebSocket on its main port for an IoT data host name.
        self.client.ws_set_options(
            path="/mqtt", headers={"Host": f"kumo.iot.{endpoints['region']}.localhost"}
        )
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: self._subacks.put(codes)
        self.client.connect(gateway.hostname or "127.0.0.1", gateway.port or 4566, keepalive=30)
        self.client.loop_start()

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        (granted,) = self._subacks.get(timeout=DEADLINE_SECONDS)
        assert not granted.is_failure, granted

    def publish(self, topic: str, payload: Any) -> None:
        info = self.client.publish(topic, json.dumps(payload), qos=1)
        info.wait_for_publish(timeout=DEADLINE_SECONDS)
        assert info.is_published(), f"no PUBACK for {topic}"

    def next_on(self, topic: str) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                break
            if message.topic == topic:
                payload: dict[str, Any] = json.loads(message.payload)
                return payload
        raise AssertionError(f"nothing on {topic} within {DEADLINE_SECONDS} s")

    def close(self) -> None:
        # An open MQTT connection would hold up the engine's shutdown.
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def subscriber(endpoints: dict[str, Any]) -> Iterator[Subscriber]:
    made = Subscriber(endpoints)
    yield made
    made.close()


def _send(api: Api, fleet: dict[str, Any], device: dict[str, Any], **body: Any) -> Any:
    return api.post(f"/api/v1/devices/{device['id']}/commands", token=fleet["token"], json=body)


def _command(api: Api, token: str, device_id: str, command_id: str) -> Any:
    return api.get(f"/api/v1/devices/{device_id}/commands/{command_id}", token=token)


def _wait_status(
    api: Api, fleet: dict[str, Any], device_id: str, command_id: str, status: str, within: float
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        answer = _command(api, fleet["token"], device_id, command_id)
        assert answer.status_code == 200, answer.text
        command: dict[str, Any] = answer.json()
        if command["status"] == status:
            return command
        if time.monotonic() > deadline:
            raise AssertionError(f"still {command['status']}, not {status}, after {within} s")
        time.sleep(0.5)


def test_command_round_trips_over_mqtt(
    api: Api, fleet: dict[str, Any], subscriber: Subscriber
) -> None:
    # Given a device listening on its commands topic
    device = fleet["devices"][0]
    topic = f"kumo/{fleet['org_id']}/{device['id']}/commands"
    subscriber.subscribe(topic)

    # When a member sends it a command
    sent = _send(api, fleet, device, name="reboot", params={"delay_s": 2}, ttl_seconds=120)
    assert sent.status_code == 201, sent.text
    command = sent.json()
    assert command["status"] == "queued"

    # Then the device receives it, answers on the result topic, and the answer is recorded
    pushed = subscriber.next_on(topic)
    assert pushed == {
        "id": command["id"],
        "name": "reboot",
        "params": {"delay_s": 2},
        "expires_at": command["expires_at"],
    }
    subscriber.publish(
        f"{topic}/result", {"id": command["id"], "status": "succeeded", "result": {"uptime_s": 0}}
    )
    done = _wait_status(api, fleet, device["id"], command["id"], "succeeded", DEADLINE_SECONDS)
    assert done["result"] == {"uptime_s": 0} and done["completed_at"] and done["delivered_at"]


def test_command_round_trips_over_http_polling(api: Api, fleet: dict[str, Any]) -> None:
    # Given a command for a device that sleeps
    device = fleet["devices"][1]
    sent = _send(api, fleet, device, name="calibrate", params={"offset": 0.5})
    assert sent.status_code == 201, sent.text
    command_id = sent.json()["id"]

    # When the device polls, it gets the command, now delivered
    polled = api.get("/api/v1/device/commands", token=device["api_key"])
    assert polled.status_code == 200, polled.text
    pending = {c["id"]: c for c in polled.json()["items"]}
    assert pending[command_id]["status"] == "delivered"
    assert pending[command_id]["params"] == {"offset": 0.5}

    # And when it reports the result, the command succeeded and is no longer pending
    result_path = f"/api/v1/device/commands/{command_id}/result"
    body = {"status": "succeeded", "result": {"offset": 0.5}}
    answered = api.post(result_path, token=device["api_key"], json=body)
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "succeeded"
    seen = _command(api, fleet["token"], device["id"], command_id).json()
    assert seen["status"] == "succeeded" and seen["result"] == {"offset": 0.5}
    again = api.get("/api/v1/device/commands", token=device["api_key"]).json()["items"]
    assert command_id not in [c["id"] for c in again]

    # Then the same result again changes nothing, and a different one conflicts
    assert api.post(result_path, token=device["api_key"], json=body).status_code == 200
    other = api.post(result_path, token=device["api_key"], json={"status": "failed"})
    assert other.status_code == 409, other.text

    # And the list shows it, newest first
    listed = api.get(f"/api/v1/devices/{device['id']}/commands", token=fleet["token"])
    assert listed.status_code == 200 and listed.json()["items"][0]["id"] == command_id


def test_expired_command_refuses_a_result(api: Api, fleet: dict[str, Any]) -> None:
    # Given a command with the shortest time to live, left to expire
    device = fleet["devices"][1]
    sent = _send(api, fleet, device, name="blink", ttl_seconds=MIN_TTL_SECONDS)
    assert sent.status_code == 201, sent.text
    command_id = sent.json()["id"]
    _wait_status(api, fleet, device["id"], command_id, "expired", MIN_TTL_SECONDS + 10)

    # When the device answers late / Then the answer is refused as expired
    late = api.post(
        f"/api/v1/device/commands/{command_id}/result",
        token=device["api_key"],
        json={"status": "succeeded"},
    )
    assert late.status_code == 409, late.text
    assert late.json()["type"] == f"{PROBLEM}command-expired"
    polled = api.get("/api/v1/device/commands", token=device["api_key"]).json()["items"]
    assert command_id not in [c["id"] for c in polled]


def test_other_org_and_other_device_get_404(api: Api, fleet: dict[str, Any]) -> None:
    device, neighbour = fleet["devices"]
    sent = _send(api, fleet, device, name="ping")
    assert sent.status_code == 201, sent.text
    command_id = sent.json()["id"]
    base = f"/api/v1/devices/{device['id']}/commands"

    # Another org's user sees neither the device's commands nor the command, nor can send
    outsider = fleet["outsider"]
    assert api.get(base, token=outsider).status_code == 404
    assert api.get(f"{base}/{command_id}", token=outsider).status_code == 404
    assert api.post(base, token=outsider, json={"name": "ping"}).status_code == 404

    # Another device's key can neither poll it nor answer it
    polled = api.get("/api/v1/device/commands", token=neighbour["api_key"]).json()["items"]
    assert command_id not in [c["id"] for c in polled]
    answer = api.post(
        f"/api/v1/device/commands/{command_id}/result",
        token=neighbour["api_key"],
        json={"status": "succeeded"},
    )
    assert answer.status_code == 404, answer.text
    assert _command(api, fleet["token"], device["id"], command_id).json()["status"] == "queued"
