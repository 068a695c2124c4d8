"""The WebSocket API under moto: the handshake's credentials, connections and subscriptions
(membership checks, idempotency, the limit, cleanup), fan-out of readings, alerts and device
status to the right channels only, and gone connections."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from kumo.core import clock
from kumo.core.config import get_settings
from kumo.core.ids import new_id
from kumo.devices import service as devices
from kumo.devices import status
from kumo.devices.schemas import RegisterDeviceRequest
from kumo.realtime import fanout
from kumo.realtime.models import (
    META,
    ChannelMemberModel,
    ConnectionModel,
    channel_key,
    connection_key,
    device_channel,
    org_channel,
)
from kumo.telemetry.contract import Batch, Reading

from tests.support import factories
from tests.support.aws import posted_to
from tests.support.factories import access_token, new_fleet
from tests.unit.conftest import FakeContext, load_handler

PROBLEM = "urn:kumo:problem:"
T0 = 1_714_564_800_000

pytestmark = pytest.mark.usefixtures("fresh_management_client")


class World:
    """An org with an owner and a device, plus a stranger in another org with theirs."""

    def __init__(self) -> None:
        ours, theirs = new_fleet("Acme"), new_fleet("Other")
        self.owner, self.org_id, (self.device_id,) = ours.owner, ours.org_id, ours.devices
        self.stranger, self.other_org = theirs.owner, theirs.org_id
        (self.other_device,) = theirs.devices
        self._ours = ours

    def member(self, role: str) -> dict[str, str]:
        return self._ours.member(role)


@pytest.fixture
def world(aws: None) -> World:
    return World()


Send = Callable[..., dict[str, Any]]


def connect(
    load_event: Callable[[str], dict[str, Any]], connection: str, principal: dict[str, str]
) -> dict[str, Any]:
    event = load_event("realtime/connect")
    event["requestContext"]["connectionId"] = connection
    event["requestContext"]["authorizer"] = principal
    result: dict[str, Any] = load_handler("realtime/ws_connect").lambda_handler(
        event, FakeContext()
    )
    return result


def subscribe_device(device_id: str, request_id: str = "r1") -> dict[str, str]:
    return {"action": "subscribe", "channel": "device", "device_id": device_id, "id": request_id}


# --- the handshake ---------------------------------------------------------------------------


@pytest.fixture
def handshake(aws, load_event: Callable[[str], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def run(headers: dict[str, str], query: dict[str, str] | None = None) -> dict[str, Any]:
        event = load_event("identity/authorizer_connect")
        event["headers"].update(headers)
        event["queryStringParameters"] = query or {}
        result: dict[str, Any] = load_handler("identity/authorizer").lambda_handler(
            event, FakeContext()
        )
        return result

    return run


def _allows_connect(result: dict[str, Any]) -> bool:
    statement = result["policyDocument"]["Statement"][0]
    resource = statement["Resource"]
    arn = "arn:aws:execute-api:us-east-1:123456789012:ws0123/prod/$connect"
    return statement["Effect"] == "Allow" and (
        resource == arn or (resource.endswith("/*") and arn.startswith(resource[:-1]))
    )


def test_handshake_accepts_a_bearer_header(handshake):
    user_id = factories.verified_user(factories.unique_email())
    result = handshake({"Authorization": f"Bearer {access_token(user_id)}"})
    assert _allows_connect(result)
    assert result["context"]["subject_id"] == user_id


def test_handshake_accepts_a_token_in_the_query_string(handshake):
    user_id = factories.verified_user(factories.unique_email())
    result = handshake({}, {"token": access_token(user_id)})
    assert _allows_connect(result)
    assert result["context"]["subject_id"] == user_id


def test_handshake_prefers_the_header_over_the_query_string(handshake):
    header_user = factories.verified_user(factories.unique_email())
    query_user = factories.verified_user(factories.unique_email())
    result = handshake(
        {"Authorization": f"Bearer {access_token(header_user)}"},
        {"token": access_token(query_user)},
    )
    assert result["context"]["subject_id"] == header_user


def test_handshake_without_credentials_is_denied(handshake):
    result = handshake({})
    assert result["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert "context" not in result


def test_handshake_with_a_forged_query_token_is_denied(handshake):
    result = handshake({}, {"token": access_token(new_id()) + "x"})
    assert result["policyDocument"]["Statement"][0]["Effect"] == "Deny"


def test_query_token_is_ignored_outside_the_handshake(load_event):
    # The REST API never reads credentials from the query string (they end up in logs).
    event = load_event("identity/authorizer_request")
    event["queryStringParameters"] = {"token": access_token(new_id())}
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        load_handler("identity/authorizer").lambda_handler(event, FakeContext())


def test_device_key_cannot_open_a_websocket(handshake, world):
    _, key, _ = devices.register_device(
        user_id=world.owner["subject_id"],
        request=RegisterDeviceRequest(org_id=world.org_id, name="sensor"),
    )
    result = handshake({"Authorization": f"Bearer {key}"})
    assert not _allows_connect(result)


# --- connections -----------------------------------------------------------------------------


def test_connect_remembers_the_user_with_an_expiry(load_event, world):
    before = int(clock.now())
    assert connect(load_event, "c1", world.owner) == {"statusCode": 200}
    item = ConnectionModel.get(connection_key("c1"), META)
    assert item.user_id == world.owner["subject_id"]
    assert item.subscriptions == 0
    assert before + 7200 <= item.expires_at <= before + 7200 + 3600


@pytest.mark.usefixtures("aws")
def test_connect_refuses_a_device_principal(load_event):
    device = {"kind": "device", "subject_id": new_id(), "roles": "", "email": "", "org_id": ""}
    assert connect(load_event, "c1", device) == {"statusCode": 403}
    assert ConnectionModel.count(connection_key("c1")) == 0


def test_connect_without_a_principal_is_refused(load_event):
    event = load_event("realtime/connect")
    del event["requestContext"]["authorizer"]
    result = load_handler("realtime/ws_connect").lambda_handler(event, FakeContext())
    assert result == {"statusCode": 401}


def test_disconnect_removes_the_connection_and_its_subscriptions(load_event, ws, world):
    connect(load_event, "c1", world.owner)
    ws("ws_subscribe", "c1", world.owner, subscribe_device(world.device_id))
    ws(
        "ws_subscribe",
        "c1",
        world.owner,
        {"action": "subscribe", "channel": "alerts", "org_id": world.org_id},
    )
    event = load_event("realtime/disconnect")
    event["requestContext"]["connectionId"] = "c1"
    assert load_handler("realtime/ws_disconnect").lambda_handler(event, FakeContext()) == {
        "statusCode": 200
    }
    assert ConnectionModel.count(connection_key("c1")) == 0
    assert ChannelMemberModel.count(channel_key(device_channel(world.org_id, world.device_id))) == 0
    assert ChannelMemberModel.count(channel_key(org_channel(world.org_id, "alerts"))) == 0


@pytest.mark.usefixtures("aws")
def test_disconnect_of_an_unknown_connection_is_harmless(load_event):
    event = load_event("realtime/disconnect")
    event["requestContext"]["connectionId"] = "never-seen"
    assert load_handler("realtime/ws_disconnect").lambda_handler(event, FakeContext()) == {
        "statusCode": 200
    }


# --- subscriptions ---------------------------------------------------------------------------


def test_member_subscribes_to_a_device_and_gets_an_ack(load_event, ws, world):
    viewer = world.member("viewer")
    connect(load_event, "c1", viewer)
    assert ws("ws_subscribe", "c1", viewer, subscribe_device(world.device_id)) == {
        "statusCode": 200
    }
    assert posted_to("c1") == [
        {
            "event": "subscribed",
            "channel": "device",
            "device_id": world.device_id,
            "org_id": world.org_id,
            "id": "r1",
        }
    ]
    members = list(
        ChannelMemberModel.query(channel_key(device_channel(world.org_id, world.device_id)))
    )
    assert [m.sk for m in members] == ["c1"]
    assert ConnectionModel.get(connection_key("c1"), META).subscriptions == 1


def test_subscribing_twice_keeps_one_subscription(load_event, ws, world):
    connect(load_event, "c1", world.owner)
    ws("ws_subscribe", "c1", world.owner, subscribe_device(world.device_id, "a"))
    ws("ws_subscribe", "c1", world.owner, subscribe_device(world.device_id, "b"))
    assert [m["event"] for m in posted_to("c1")] == ["subscribed", "subscribed"]
    assert ConnectionModel.get(connection_key("c1"), META).subscriptions == 1
    assert ChannelMemberModel.count(channel_key(device_channel(world.org_id, world.device_id))) == 1


def test_stranger_cannot_subscribe_to_another_orgs_device(load_event, ws, world):
    connect(load_event, "c1", world.stranger)
    ws("ws_subscribe", "c1", world.stranger, subscribe_device(world.device_id, "x"))
    [reply] = posted_to("c1")
    assert reply["event"] == "error" and reply["id"] == "x"
    assert reply["problem"]["status"] == 404
    assert reply["problem"]["type"] == f"{PROBLEM}not-found"
    assert ChannelMemberModel.count(channel_key(device_channel(world.org_id, world.device_id))) == 0
    assert ConnectionModel.get(connection_key("c1"), META).subscriptions == 0


@pytest.mark.parametrize("channel", ["alerts", "status"])
def test_stranger_cannot_subscribe_to_another_orgs_channels(load_event, ws, world, channel):
    connect(load_event, "c1", world.stranger)
    ws(
        "ws_subscribe",
        "c1",
        world.stranger,
        {"action": "subscribe", "channel": channel, "org_id": world.org_id},
    )
    [reply] = posted_to("c1")
    assert reply["problem"]["status"] == 404
    assert ChannelMemberModel.count(channel_key(org_channel(world.org_id, channel))) == 0


@pytest.mark.parametrize("channel", ["alerts", "status"])
def test_viewer_subscribes_to_the_orgs_channels(load_event, ws, world, channel):
    viewer = world.member("viewer")
    connect(load_event, "c1", viewer)
    ws(
        "ws_subscribe",
        "c1",
        viewer,
        {"action": "subscribe", "channel": channel, "org_id": world.org_id},
    )
    assert posted_to("c1") == [{"event": "subscribed", "channel": channel, "org_id": world.org_id}]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "subscribe", "channel": "device"}, "body"),
        ({"action": "subscribe", "channel": "alerts"}, "body"),
        ({"action": "subscribe", "channel": "weather", "org_id": "0" * 26}, "channel"),
        ({"action": "subscribe", "channel": "device", "device_id": "not-an-id"}, "device_id"),
        ({"action": "subscribe", "channel": "alerts", "org_id": "0" * 26, "extra": 1}, "extra"),
        # Text that is not JSON is a 400 malformed-json: tests/unit/test_core_request_body.py
    ],
)
def test_malformed_subscription_gets_a_422_and_stores_nothing(load_event, ws, world, body, field):
    connect(load_event, "c1", world.owner)
    ws("ws_subscribe", "c1", world.owner, body)
    [reply] = posted_to("c1")
    assert reply["event"] == "error"
    assert reply["problem"]["status"] == 422
    assert reply["problem"]["type"] == f"{PROBLEM}validation-error"
    fields = [e["field"] for e in reply["problem"]["errors"]]
    assert any(f == field or f.startswith(field) for f in fields) or field == "body"
    assert ConnectionModel.count(connection_key("c1")) == 1  # only META


def test_subscription_limit_answers_409(load_event, ws, world, monkeypatch):
    monkeypatch.setenv("SUBSCRIPTIONS_PER_CONNECTION", "1")
    get_settings.cache_clear()
    try:
        connect(load_event, "c1", world.owner)
        ws("ws_subscribe", "c1", world.owner, subscribe_device(world.device_id))
        ws(
            "ws_subscribe",
            "c1",
            world.owner,
            {"action": "subscribe", "channel": "alerts", "org_id": world.org_id},
        )
    finally:
        get_settings.cache_clear()
    first, second = posted_to("c1")
    assert first["event"] == "subscribed"
    assert second["problem"]["status"] == 409
    assert second["problem"]["type"] == f"{PROBLEM}subscription-limit-reached"
    assert second["problem"]["limit"] == 1
    assert ChannelMemberModel.count(channel_key(org_channel(world.org_id, "alerts"))) == 0


def test_subscribing_on_a_closed_connection_is_gone(ws, world):
    ws("ws_subscribe", "c-closed", world.owner, subscribe_device(world.device_id))
    [reply] = posted_to("c-closed")
    assert reply["problem"]["status"] == 410
    assert ChannelMemberModel.count(channel_key(device_channel(world.org_id, world.device_id))) == 0


def test_unsubscribe_removes_the_subscription(load_event, ws, world):
    connect(load_event, "c1", world.owner)
    ws("ws_subscribe", "c1", world.owner, subscribe_device(world.device_id))
    body = {**subscribe_device(world.device_id, "u1"), "action": "unsubscribe"}
    ws("ws_unsubscribe", "c1", world.owner, body)
    assert posted_to("c1")[-1] == {
        "event": "unsubscribed",
        "channel": "device",
        "device_id": world.device_id,
        "org_id": world.org_id,
        "id": "u1",
    }
    assert ChannelMemberModel.count(channel_key(device_channel(world.org_id, world.device_id))) == 0
    assert ConnectionModel.get(connection_key("c1"), META).subscriptions == 0


def test_unsubscribing_what_was_never_joined_is_a_no_op(load_event, ws, world):
    connect(load_event, "c1", world.owner)
    body = {**subscribe_device(world.device_id), "action": "unsubscribe"}
    ws("ws_unsubscribe", "c1", world.owner, body)
    assert posted_to("c1")[-1]["event"] == "unsubscribed"
    assert ConnectionModel.get(connection_key("c1"), META).subscriptions == 0


def test_ping_answers_pong_with_the_id(load_event, ws, world):
    connect(load_event, "c1", world.owner)
    ws("ws_default", "c1", world.owner, {"action": "ping", "id": "p"})
    [reply] = posted_to("c1")
    assert reply["event"] == "pong" and reply["id"] == "p" and reply["at"].endswith("Z")


@pytest.mark.parametrize("body", [{"action": "shout"}, {"hello": 1}, "plain text", None])
def test_unknown_action_gets_a_400(load_event, ws, world, body):
    connect(load_event, "c1", world.owner)
    ws("ws_default", "c1", world.owner, body)
    [reply] = posted_to("c1")
    assert reply["problem"]["status"] == 400
    assert reply["problem"]["actions"] == ["subscribe", "unsubscribe", "ping"]


# --- fan-out ---------------------------------------------------------------------------------


def _subscribe(
    load_event: Any, ws: Send, connection: str, principal: dict[str, str], body: dict[str, str]
) -> None:
    connect(load_event, connection, principal)
    ws("ws_subscribe", connection, principal, body)


def _events(connection_id: str, event: str) -> list[dict[str, Any]]:
    return [m for m in posted_to(connection_id) if m["event"] == event]


def test_readings_reach_the_devices_subscribers_in_one_message_per_device(load_event, ws, world):
    _subscribe(load_event, ws, "mine", world.owner, subscribe_device(world.device_id))
    _subscribe(load_event, ws, "theirs", world.stranger, subscribe_device(world.other_device))
    batches = [
        Batch(world.org_id, world.device_id, (Reading(T0 + 1000, {"t": 2.0}),)),
        Batch(world.org_id, world.device_id, (Reading(T0, {"t": 1.0, "h": 40.0}),)),
    ]
    assert fanout.publish_readings(batches) == 1
    [message] = _events("mine", "readings")
    assert message == {
        "event": "readings",
        "org_id": world.org_id,
        "device_id": world.device_id,
        "readings": [
            {"ts": "2024-05-01T12:00:00.000Z", "metrics": {"t": 1.0, "h": 40.0}},
            {"ts": "2024-05-01T12:00:01.000Z", "metrics": {"t": 2.0}},
        ],
    }
    assert _events("theirs", "readings") == []


def test_readings_without_subscribers_post_nothing(world):
    batch = Batch(world.org_id, world.device_id, (Reading(T0, {"t": 1.0}),))
    assert fanout.publish_readings([batch]) == 0


def test_a_large_batch_is_split_under_the_frame_limit(load_event, ws, world):
    _subscribe(load_event, ws, "c1", world.owner, subscribe_device(world.device_id))
    metrics = {f"metric_{n:02d}": float(n) for n in range(40)}
    readings = tuple(Reading(T0 + n, metrics) for n in range(200))
    fanout.publish_readings([Batch(world.org_id, world.device_id, readings)])
    messages = _events("c1", "readings")
    assert len(messages) > 1
    assert sum(len(m["readings"]) for m in messages) == 200
    assert all(
        len(json.dumps(m, separators=(",", ":"))) <= fanout.MAX_MESSAGE_BYTES for m in messages
    )


def test_ingestion_pushes_what_it_stored(load_event, ws, world):
    from kumo.telemetry import ingest

    _subscribe(load_event, ws, "c1", world.owner, subscribe_device(world.device_id))
    now_ms = int(clock.now() * 1000)
    ingest.ingest_http(
        org_id=world.org_id,
        device_id=world.device_id,
        payload={"ts": now_ms, "metrics": {"temp": 21.5}},
        size=40,
    )
    [message] = _events("c1", "readings")
    assert message["readings"][0]["metrics"] == {"temp": 21.5}


def test_alerts_reach_only_the_orgs_alert_subscribers(load_event, ws, world):
    _subscribe(
        load_event,
        ws,
        "mine",
        world.owner,
        {"action": "subscribe", "channel": "alerts", "org_id": world.org_id},
    )
    _subscribe(
        load_event,
        ws,
        "theirs",
        world.stranger,
        {"action": "subscribe", "channel": "alerts", "org_id": world.other_org},
    )
    fanout.publish_alert(world.org_id, {"state": "open", "alert_id": "A1"})
    assert _events("mine", "alert") == [
        {"event": "alert", "org_id": world.org_id, "state": "open", "alert_id": "A1"}
    ]
    assert _events("theirs", "alert") == []


def test_a_device_going_offline_reaches_status_subscribers(load_event, ws, world):
    from datetime import UTC, datetime, timedelta

    _subscribe(
        load_event,
        ws,
        "c1",
        world.owner,
        {"action": "subscribe", "channel": "status", "org_id": world.org_id},
    )
    status._marked_at.clear()
    status.mark_seen({world.device_id})
    [online] = _events("c1", "device_status")
    assert online["device_id"] == world.device_id and online["status"] == "online"
    later = datetime.fromtimestamp(clock.now(), UTC) + timedelta(
        seconds=get_settings().device_offline_seconds + 60
    )
    status.mark_silent_offline(later)
    assert [m["status"] for m in _events("c1", "device_status")] == ["online", "offline"]


def test_a_gone_connection_is_removed_and_the_others_still_served(load_event, ws, world):
    _subscribe(load_event, ws, "alive", world.owner, subscribe_device(world.device_id))
    _subscribe(load_event, ws, "gone", world.owner, subscribe_device(world.device_id))
    client = fanout.management_client()
    real_post = client.post_to_connection
    calls: list[str] = []

    def post(ConnectionId: str, Data: bytes) -> Any:
        calls.append(ConnectionId)
        if ConnectionId == "gone":  # what API Gateway answers for a closed connection
            error = {"Error": {"Code": "GoneException", "Message": ""}}
            raise ClientError(error, "PostToConnection")  # type: ignore[arg-type]
        return real_post(ConnectionId=ConnectionId, Data=Data)

    client.post_to_connection = post
    batch = Batch(world.org_id, world.device_id, (Reading(T0, {"t": 1.0}),))
    assert fanout.publish_readings([batch]) == 1
    assert sorted(calls) == ["alive", "gone"]
    assert ConnectionModel.count(connection_key("gone")) == 0
    assert [
        m.sk
        for m in ChannelMemberModel.query(
            channel_key(device_channel(world.org_id, world.device_id))
        )
    ] == ["alive"]


def test_a_failing_fan_out_never_fails_the_caller(load_event, ws, world, monkeypatch):
    _subscribe(load_event, ws, "c1", world.owner, subscribe_device(world.device_id))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("management API down")

    monkeypatch.setattr(fanout, "broadcast", broken)
    batch = Batch(world.org_id, world.device_id, (Reading(T0, {"t": 1.0}),))
    assert fanout.publish_readings([batch]) == 0
