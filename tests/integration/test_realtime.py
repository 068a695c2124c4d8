"""The live stream end to end, with real WebSocket and MQTT clients: the handshake's
credentials, subscriptions, a published reading reaching a subscriber within a deadline, an
alert reaching the org's alert subscribers (and its e-mail the outbox), device status, and
another org receiving none of it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.integration.conftest import Api, Outbox, signed_up_user, unique_email

DEADLINE_SECONDS = 20.0
# How long a socket that should get nothing is watched after the others got theirs.
QUIET_SECONDS = 3.0


class Live:
    """A WebSocket client that keeps every message it received."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.received: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.socket.send(json.dumps(message))

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = DEADLINE_SECONDS
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for message in self.received:
            if match(message):
                return message
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(self.socket.recv(timeout=remaining))
            except TimeoutError:
                break
            self.received.append(message)
            if match(message):
                return message
        raise AssertionError(f"nothing matched within {timeout} s; got {self.received}")

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Everything that arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self.received.append(json.loads(self.socket.recv(timeout=remaining)))
            except TimeoutError:
                break
        return self.received

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send a message with a fresh id and wait for the reply that carries it."""
        request_id = uuid.uuid4().hex[:12]
        self.send({**message, "id": request_id})
        return self.wait_for(lambda m: m.get("id") == request_id)


@pytest.fixture(scope="module")
def open_live(endpoints: dict[str, Any]) -> Iterator[Callable[..., Live]]:
    opened: list[ClientConnection] = []

    def open_(token: str | None = None, *, query: bool = False) -> Live:
        url, headers = endpoints["websocket"], {}
        if token and query:
            url = f"{url}?token={token}"
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        socket = connect(url, additional_headers=headers, open_timeout=DEADLINE_SECONDS)
        opened.append(socket)
        return Live(socket)

    yield open_
    for socket in opened:  # an open socket would hold up the engine's shutdown
        socket.close()


@pytest.fixture(scope="module")
def site(api: Api, outbox: Outbox) -> dict[str, Any]:
    owner = signed_up_user(api, outbox, "live")
    token = owner["access_token"]
    org_id = api.post("/api/v1/orgs", token=token, json={"name": "Live"}).json()["id"]
    devices = [
        api.post("/api/v1/devices", token=token, json={"org_id": org_id, "name": f"d{n}"}).json()
        for n in range(2)
    ]
    outsider = signed_up_user(api, outbox, "live-outsider")["access_token"]
    other_org = api.post("/api/v1/orgs", token=outsider, json={"name": "Other"}).json()["id"]
    other_device = api.post(
        "/api/v1/devices", token=outsider, json={"org_id": other_org, "name": "theirs"}
    ).json()
    return {
        "token": token,
        "org_id": org_id,
        "devices": devices,
        "outsider": outsider,
        "other_org": other_org,
        "other_device": other_device,
    }


def _device_channel(device_id: str) -> dict[str, str]:
    return {"action": "subscribe", "channel": "device", "device_id": device_id}


def _readings_of(device_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("event") == "readings" and m.get("device_id") == device_id


# --- the handshake ---------------------------------------------------------------------------


def test_handshake_without_credentials_is_refused_with_403(open_live):
    with pytest.raises(InvalidStatus) as refused:
        open_live()
    assert refused.value.response.status_code == 403


def test_handshake_with_a_forged_token_is_refused_with_403(open_live, site):
    with pytest.raises(InvalidStatus) as refused:
        open_live(site["token"][:-4] + "AAAA")
    assert refused.value.response.status_code == 403


def test_handshake_with_a_device_key_is_refused_with_403(open_live, site):
    with pytest.raises(InvalidStatus) as refused:
        open_live(site["devices"][0]["api_key"])
    assert refused.value.response.status_code == 403


def test_a_browser_connects_with_a_token_in_the_query_and_pings(open_live, site):
    live = open_live(site["token"], query=True)
    pong = live.request({"action": "ping"})
    assert pong["event"] == "pong" and pong["at"].endswith("Z")


def test_an_unknown_action_gets_a_400_problem(open_live, site):
    live = open_live(site["token"])
    reply = live.request({"action": "shout"})
    assert reply["event"] == "error"
    assert reply["problem"]["status"] == 400
    assert reply["problem"]["type"] == "urn:kumo:problem:bad-request"


def test_a_bad_subscription_gets_a_422_problem(open_live, site):
    live = open_live(site["token"])
    reply = live.request({"action": "subscribe", "channel": "device"})
    assert reply["problem"]["status"] == 422
    assert reply["problem"]["errors"]


# --- readings --------------------------------------------------------------------------------


def test_a_published_reading_reaches_a_subscriber_and_not_another_org(open_live, site, mqtt_client):
    # Given our subscriber on device 0, and an outsider subscribed to their own device who
    # also tried ours
    device = site["devices"][0]
    mine = open_live(site["token"])
    ack = mine.request(_device_channel(device["id"]))
    assert ack == {
        "event": "subscribed",
        "channel": "device",
        "device_id": device["id"],
        "org_id": site["org_id"],
        "id": ack["id"],
    }
    theirs = open_live(site["outsider"])
    assert theirs.request(_device_channel(site["other_device"]["id"]))["event"] == "subscribed"
    refused = theirs.request(_device_channel(device["id"]))
    assert refused["problem"]["status"] == 404

    # When the device publishes a reading over MQTT
    published_at = time.monotonic()
    ts = int(time.time() * 1000)
    info = mqtt_client.publish(
        f"kumo/{site['org_id']}/{device['id']}/telemetry",
        json.dumps({"ts": ts, "metrics": {"temp": 21.25}}),
        qos=1,
    )
    info.wait_for_publish(timeout=10)

    # Then it reaches our subscriber within the deadline, and the outsider gets nothing
    message = mine.wait_for(_readings_of(device["id"]))
    latency = time.monotonic() - published_at
    assert message["org_id"] == site["org_id"]
    assert {"metrics": {"temp": 21.25}}.items() <= message["readings"][0].items()
    assert latency < DEADLINE_SECONDS
    assert [m for m in theirs.drain(QUIET_SECONDS) if m["event"] == "readings"] == []


def test_readings_posted_over_http_reach_the_subscriber_batched(open_live, site, api):
    device = site["devices"][1]
    live = open_live(site["token"])
    live.request(_device_channel(device["id"]))
    now = int(time.time() * 1000)
    readings = [{"ts": now - 2000 + n * 1000, "metrics": {"n": n}} for n in range(3)]
    answer = api.post(
        "/api/v1/device/readings", token=device["api_key"], json={"readings": readings}
    )
    assert answer.status_code == 202, answer.text
    message = live.wait_for(_readings_of(device["id"]))
    # One message for the batch, oldest first.
    assert [r["metrics"]["n"] for r in message["readings"]] == [0, 1, 2]


def test_unsubscribe_stops_the_stream(open_live, site, api):
    device = site["devices"][1]
    live = open_live(site["token"])
    live.request(_device_channel(device["id"]))
    left = live.request({**_device_channel(device["id"]), "action": "unsubscribe"})
    assert left["event"] == "unsubscribed"
    api.post("/api/v1/device/readings", token=device["api_key"], json={"metrics": {"n": 9}})
    assert [m for m in live.drain(QUIET_SECONDS) if m["event"] == "readings"] == []


# --- alerts and status -----------------------------------------------------------------------


def test_an_alert_reaches_the_orgs_subscribers_and_the_outbox(open_live, site, api, outbox):
    # Given a rule that mails and pushes, a subscriber to our alerts, an outsider to theirs
    address = unique_email("live-oncall")
    rule = api.post(
        "/api/v1/alert-rules",
        token=site["token"],
        json={
            "org_id": site["org_id"],
            "name": "Boiling",
            "metric": "boiler",
            "comparison": "gt",
            "threshold": 90,
            "severity": "critical",
            "channels": {"email": [address], "websocket": True},
        },
    )
    assert rule.status_code == 201, rule.text
    mine = open_live(site["token"])
    assert (
        mine.request({"action": "subscribe", "channel": "alerts", "org_id": site["org_id"]})[
            "event"
        ]
        == "subscribed"
    )
    theirs = open_live(site["outsider"])
    theirs.request({"action": "subscribe", "channel": "alerts", "org_id": site["other_org"]})
    refused = theirs.request({"action": "subscribe", "channel": "alerts", "org_id": site["org_id"]})
    assert refused["problem"]["status"] == 404

    # When a reading crosses the threshold
    device = site["devices"][0]
    api.post("/api/v1/device/readings", token=device["api_key"], json={"metrics": {"boiler": 95}})

    # Then the alert is pushed, the e-mail lands, and the outsider hears nothing
    alert = mine.wait_for(lambda m: m.get("event") == "alert" and m.get("state") == "open")
    assert (alert["rule_id"], alert["device_id"], alert["value"]) == (
        rule.json()["id"],
        device["id"],
        95,
    )
    assert alert["severity"] == "critical"
    outbox.wait_for(address, "boiler")
    # And back in range, the resolution is pushed too
    api.post("/api/v1/device/readings", token=device["api_key"], json={"metrics": {"boiler": 60}})
    resolved = mine.wait_for(lambda m: m.get("event") == "alert" and m.get("state") == "resolved")
    assert resolved["alert_id"] == alert["alert_id"]
    assert [m for m in theirs.drain(QUIET_SECONDS) if m["event"] == "alert"] == []


def test_a_device_coming_online_reaches_status_subscribers(open_live, site, api):
    # A new device is offline until its first message.
    device = api.post(
        "/api/v1/devices", token=site["token"], json={"org_id": site["org_id"], "name": "fresh"}
    ).json()
    live = open_live(site["token"])
    live.request({"action": "subscribe", "channel": "status", "org_id": site["org_id"]})
    api.post("/api/v1/device/readings", token=device["api_key"], json={"metrics": {"v": 1}})
    status = live.wait_for(
        lambda m: m.get("event") == "device_status" and m.get("device_id") == device["id"]
    )
    assert status["status"] == "online" and status["org_id"] == site["org_id"]


# --- connection lifecycle --------------------------------------------------------------------


def _table(endpoints: dict[str, Any]) -> Any:
    dynamodb = boto3.resource(
        "dynamodb",
        endpoint_url=endpoints["gateway"],
        region_name=endpoints["region"],
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    return dynamodb.Table(f"kumo-{endpoints['stage']}-connections")


def _members(endpoints: dict[str, Any], org_id: str, device_id: str) -> list[str]:
    answer = _table(endpoints).query(
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": f"CHAN#{org_id}#device#{device_id}"},
        ConsistentRead=True,
    )
    return [str(item["sk"]) for item in answer["Items"]]


def _until(condition: Callable[[], bool], timeout: float = DEADLINE_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_closing_the_socket_removes_its_subscriptions(open_live, site, api, endpoints):
    device = api.post(
        "/api/v1/devices", token=site["token"], json={"org_id": site["org_id"], "name": "brief"}
    ).json()
    live = open_live(site["token"])
    live.request(_device_channel(device["id"]))
    assert len(_members(endpoints, site["org_id"], device["id"])) == 1
    live.socket.close()
    assert _until(lambda: _members(endpoints, site["org_id"], device["id"]) == [])


def test_a_gone_connection_is_dropped_on_the_next_push(open_live, site, api, endpoints):
    # Given a subscription whose connection no longer exists (a $disconnect that never ran)
    device = api.post(
        "/api/v1/devices", token=site["token"], json={"org_id": site["org_id"], "name": "ghost"}
    ).json()
    ghost = "ghost" + uuid.uuid4().hex[:11]
    expires = int(time.time()) + 600
    table = _table(endpoints)
    table.put_item(
        Item={
            "pk": f"CHAN#{site['org_id']}#device#{device['id']}",
            "sk": ghost,
            "user_id": "u",
            "expires_at": expires,
        }
    )
    live = open_live(site["token"])
    live.request(_device_channel(device["id"]))

    # When a reading is pushed
    api.post("/api/v1/device/readings", token=device["api_key"], json={"metrics": {"v": 2}})

    # Then the live subscriber gets it and the gone one is removed
    live.wait_for(_readings_of(device["id"]))
    assert _until(lambda: ghost not in _members(endpoints, site["org_id"], device["id"]))
    assert len(_members(endpoints, site["org_id"], device["id"])) == 1
