"""Chat presence and typing under moto (kumo.chat.presence, ADR 29): a heartbeat counts for the
window and is read by its deadline, never by the TTL; changes, not heartbeats, are pushed to
every channel the user is a member of, at most once every 5 s per user; the sweep tells the
channels of users whose deadline passed, once; a channel's presence is for those who see it;
typing notices reach the channel and store nothing; the WebSocket and REST handlers and their
per-connection limits."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from kumo.chat import channels, presence
from kumo.chat.models import (
    ChatItem,
    PresenceModel,
    channel_key,
    presence_key,
    present_key,
)
from kumo.core import abuse_limits, clock
from kumo.core.config import get_settings
from kumo.core.errors import Forbidden, NotFound
from kumo.core.rate_limit import Limit

from tests.support.aws import posted_to
from tests.support.factories import (
    Fleet,
    add_member,
    new_channel,
    new_fleet,
    principal_for,
    unique_email,
    websocket_connection,
    websocket_subscribe,
)
from tests.unit.conftest import T0, Clock, FakeContext, load_handler

pytestmark = pytest.mark.usefixtures("aws", "fresh_management_client")

PROBLEM = "urn:kumo:problem:"
WINDOW = get_settings().presence_window_seconds
GAP = presence.PUSH_GAP_SECONDS


# --- fixtures and helpers -------------------------------------------------------------------


@dataclass(frozen=True)
class Room:
    """A public channel Alice created and Bob joined; Carol is in the org but not the channel,
    and the stranger owns another org (user ids)."""

    org: Fleet
    channel_id: str
    alice: str
    bob: str
    carol: str
    stranger: str

    @property
    def org_id(self) -> str:
        return self.org.org_id


@pytest.fixture
def room(at: Clock) -> Room:
    org = new_fleet("Acme", devices=0)
    alice, bob, carol = (org.member("member")["subject_id"] for _ in range(3))
    channel_id = new_channel(org.org_id, alice)
    channels.join(user_id=bob, channel_id=channel_id, password=None)
    return Room(org, channel_id, alice, bob, carol, new_fleet("Other", devices=0).owner_id)


def on_chat(user_id: str, channel_id: str) -> str:
    """A new connection of the user, subscribed to a chat channel."""
    connection_id = websocket_connection(user_id)
    websocket_subscribe(connection_id, user_id, "chat", channel_id=channel_id)
    return connection_id


def events(connection_id: str, event: str) -> list[dict[str, Any]]:
    return [m for m in posted_to(connection_id) if m["event"] == event]


def told(connection_id: str) -> list[tuple[str, str]]:
    """The presence pushes a connection received: (user id, status), in order."""
    return [(m["user_id"], m["status"]) for m in events(connection_id, "presence")]


def pushed(user_id: str, status: str, until: float | None) -> dict[str, Any]:
    return {
        "event": "presence",
        "user_id": user_id,
        "status": status,
        "until": None if until is None else clock.utc_iso(until),
    }


def stored(user_id: str) -> PresenceModel:
    return PresenceModel.get(presence_key(user_id), "META", consistent_read=True)


def indexed(user_id: str) -> bool:
    """Whether the user is in the sparse index the sweep reads (any shard)."""
    return any(
        item.pk == presence_key(user_id)
        for shard in range(presence.SHARDS)
        for item in PresenceModel.present.query(present_key(shard))
    )


def chat_items() -> set[tuple[str, str]]:
    """The key of every item of the chat table."""
    scan = boto3.client("dynamodb").get_paginator("scan")
    pages = scan.paginate(TableName=get_settings().chat_table)
    return {(i["pk"]["S"], i["sk"]["S"]) for page in pages for i in page["Items"]}


@pytest.fixture
def chat_ws(load_event: Callable[[str], dict[str, Any]]) -> Callable[..., list[dict[str, Any]]]:
    """Run a chat WebSocket route's handler as API Gateway would, for `user_id` on
    `connection`; answers everything posted to that connection so far."""

    def send(route: str, connection: str, user_id: str, body: Any) -> list[dict[str, Any]]:
        event = load_event("realtime/subscribe")
        event["requestContext"]["routeKey"] = route
        event["requestContext"]["connectionId"] = connection
        event["requestContext"]["authorizer"] = principal_for(user_id)
        event["body"] = json.dumps(body)
        handler = load_handler(f"chat/ws_{route}")
        assert handler.lambda_handler(event, FakeContext()) == {"statusCode": 200}
        return posted_to(connection)

    return send


# --- heartbeats -----------------------------------------------------------------------------


def test_heartbeat_online_counts_until_the_window_ends(room: Room, at: Clock) -> None:
    # When Alice's client says online
    shown = presence.heartbeat(room.alice, "online")

    # Then she is online until the window ends, and read so from the store
    assert shown.model_dump() == {
        "user_id": room.alice,
        "status": "online",
        "seen_at": clock.utc_iso(T0),
        "until": clock.utc_iso(T0 + WINDOW),
    }
    item = stored(room.alice)
    assert float(item.fresh_until) == T0 + WINDOW
    assert presence.status_of(item, T0) == "online"
    assert indexed(room.alice)


def test_heartbeat_online_is_pushed_once_to_every_channel_of_the_user(room: Room) -> None:
    # Given Alice in the room, in a second channel of the org, and in a channel of another org
    # she also belongs to, each with a subscriber; and a channel she is not in, with one too
    second = new_channel(room.org_id, room.alice)
    channels.join(user_id=room.carol, channel_id=second, password=None)
    other_org = new_fleet("Elsewhere", devices=0)
    add_member(other_org.org_id, room.alice, unique_email("alice"), "member")
    abroad = new_channel(other_org.org_id, room.alice)
    channels.join(user_id=other_org.owner_id, channel_id=abroad, password=None)
    not_hers = new_channel(room.org_id, room.carol)
    listeners = [
        on_chat(room.bob, room.channel_id),
        on_chat(room.carol, second),
        on_chat(other_org.owner_id, abroad),
    ]
    outside = on_chat(room.carol, not_hers)

    # When she says online
    presence.heartbeat(room.alice, "online")

    # Then each of her channels' subscribers is told once, and the other channel nothing
    once = [pushed(room.alice, "online", T0 + WINDOW)]
    assert [events(connection_id, "presence") for connection_id in listeners] == [once] * 3
    assert posted_to(outside) == []


def test_heartbeat_with_the_same_status_pushes_nothing_and_moves_the_deadline(
    room: Room, at: Clock
) -> None:
    # Given Alice online, told to Bob
    bobs = on_chat(room.bob, room.channel_id)
    presence.heartbeat(room.alice, "online")

    # When her next heartbeat says online again
    at.at = T0 + 20
    shown = presence.heartbeat(room.alice, "online")

    # Then nothing more is pushed, and she counts until the new window ends
    assert told(bobs) == [(room.alice, "online")]
    assert shown.until == clock.utc_iso(T0 + 20 + WINDOW)
    assert float(stored(room.alice).fresh_until) == T0 + 20 + WINDOW


def test_heartbeat_away_is_pushed(room: Room, at: Clock) -> None:
    bobs = on_chat(room.bob, room.channel_id)
    presence.heartbeat(room.alice, "online")

    at.at = T0 + 10
    shown = presence.heartbeat(room.alice, "away")

    assert shown.status == "away"
    assert events(bobs, "presence") == [
        pushed(room.alice, "online", T0 + WINDOW),
        pushed(room.alice, "away", T0 + 10 + WINDOW),
    ]
    assert presence.status_of(stored(room.alice), T0 + 10) == "away"


def test_heartbeat_change_within_the_gap_is_held_back_until_the_next_heartbeat(
    room: Room, at: Clock
) -> None:
    # Given Alice online, told to Bob
    bobs = on_chat(room.bob, room.channel_id)
    presence.heartbeat(room.alice, "online")

    # When she goes away 2 s later
    at.at = T0 + 2
    shown = presence.heartbeat(room.alice, "away")

    # Then it is recorded (and answered) but not yet pushed
    assert shown.status == "away"
    assert presence.status_of(stored(room.alice), T0 + 2) == "away"
    assert told(bobs) == [(room.alice, "online")]

    # When her next heartbeat comes once the gap is over
    at.at = T0 + GAP
    presence.heartbeat(room.alice, "away")

    # Then the change is told, once
    assert events(bobs, "presence")[1:] == [pushed(room.alice, "away", T0 + GAP + WINDOW)]


def test_heartbeat_change_undone_within_the_gap_is_never_told(room: Room, at: Clock) -> None:
    bobs = on_chat(room.bob, room.channel_id)
    presence.heartbeat(room.alice, "online")

    at.at = T0 + 1
    presence.heartbeat(room.alice, "away")
    at.at = T0 + GAP + 1
    presence.heartbeat(room.alice, "online")

    assert told(bobs) == [(room.alice, "online")]


def test_heartbeat_offline_is_pushed_and_the_sweep_tells_it_no_more(room: Room, at: Clock) -> None:
    # Given Alice online
    bobs = on_chat(room.bob, room.channel_id)
    presence.heartbeat(room.alice, "online")

    # When her client closes and says offline
    at.at = T0 + 10
    shown = presence.heartbeat(room.alice, "offline")

    # Then she is offline with no deadline, and Bob is told
    assert shown.model_dump() == {
        "user_id": room.alice,
        "status": "offline",
        "seen_at": clock.utc_iso(T0 + 10),
        "until": None,
    }
    assert events(bobs, "presence")[1:] == [pushed(room.alice, "offline", None)]

    # And the next sweep tells no one again, and takes her out of its index
    at.at = T0 + 11
    assert presence.sweep() == 0
    assert not indexed(room.alice)
    assert told(bobs) == [(room.alice, "online"), (room.alice, "offline")]


def test_heartbeat_offline_within_the_gap_is_told_by_the_next_sweep(room: Room, at: Clock) -> None:
    # Given Alice online, told to Bob, whose client closes 2 s later (held back by the gap)
    bobs = on_chat(room.bob, room.channel_id)
    presence.heartbeat(room.alice, "online")
    at.at = T0 + 2
    presence.heartbeat(room.alice, "offline")
    assert told(bobs) == [(room.alice, "online")]

    # When the sweep runs next
    at.at = T0 + 60
    swept = presence.sweep()

    # Then Bob is told she is offline, once, and she leaves the index
    assert swept == 1
    assert events(bobs, "presence")[1:] == [pushed(room.alice, "offline", None)]
    assert presence.sweep() == 0
    assert not indexed(room.alice)


def test_status_past_the_window_is_offline_though_the_item_says_online(
    room: Room, at: Clock
) -> None:
    # Given Alice's one heartbeat, its item still there (the TTL removes it a day later)
    presence.heartbeat(room.alice, "online")
    item = stored(room.alice)

    # Then she is online to the end of the window, offline from then on
    assert presence.status_of(item, T0 + WINDOW - 0.001) == "online"
    assert item.status == "online"
    assert presence.status_of(item, T0 + WINDOW) == "offline"

    # And the channel's presence reads her so, with no deadline
    at.at = T0 + WINDOW
    found, _ = presence.channel_presence(
        user_id=room.bob, channel_id=room.channel_id, limit=None, cursor=None
    )
    assert {p.user_id: (p.status, p.until) for p in found}[room.alice] == ("offline", None)


# --- the sweep ------------------------------------------------------------------------------


def test_sweep_tells_offline_exactly_those_whose_deadline_passed(room: Room, at: Clock) -> None:
    # Given Alice and Bob online at T0, Bob again at T0 + 30, and Carol listening
    channels.join(user_id=room.carol, channel_id=room.channel_id, password=None)
    carols = on_chat(room.carol, room.channel_id)
    presence.heartbeat(room.alice, "online")
    presence.heartbeat(room.bob, "online")
    at.at = T0 + 30
    presence.heartbeat(room.bob, "online")

    # When the sweep runs past Alice's deadline, before Bob's
    at.at = T0 + WINDOW + 1
    swept = presence.sweep()

    # Then Alice alone is told offline, and leaves the index; Bob is still online
    assert swept == 1
    assert events(carols, "presence")[-1] == pushed(room.alice, "offline", None)
    assert told(carols) == [
        (room.alice, "online"),
        (room.bob, "online"),
        (room.alice, "offline"),
    ]
    assert not indexed(room.alice) and indexed(room.bob)
    assert presence.status_of(stored(room.bob), at.at) == "online"

    # And the next sweep tells no one again; once Bob's deadline passes, him alone
    assert presence.sweep() == 0
    at.at = T0 + 30 + WINDOW + 1
    assert presence.sweep() == 1
    assert told(carols)[3:] == [(room.bob, "offline")]


def test_sweep_spares_a_heartbeat_that_came_after_it_read_the_index(
    room: Room, at: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Alice past her deadline, and her heartbeat landing right after the sweep reads her
    bobs = on_chat(room.bob, room.channel_id)
    presence.heartbeat(room.alice, "online")
    at.at = T0 + WINDOW + 1
    read = PresenceModel.present.query

    def read_then_heartbeat(*args: Any, **kwargs: Any) -> Iterator[PresenceModel]:
        for item in list(read(*args, **kwargs)):
            presence.heartbeat(room.alice, "online")
            yield item

    monkeypatch.setattr(PresenceModel.present, "query", read_then_heartbeat)

    # When the sweep runs
    swept = presence.sweep()

    # Then she is not told offline, and stays in the index with her new deadline
    assert swept == 0
    assert told(bobs) == [(room.alice, "online")]
    monkeypatch.undo()
    assert indexed(room.alice)
    assert presence.status_of(stored(room.alice), at.at) == "online"


def test_sweep_does_not_tell_again_a_return_held_back_by_the_gap(room: Room, at: Clock) -> None:
    # Given Alice swept offline, and back online 2 s later (held back by the gap)
    bobs = on_chat(room.bob, room.channel_id)
    presence.heartbeat(room.alice, "online")
    at.at = T0 + WINDOW + 1
    assert presence.sweep() == 1
    at.at = T0 + WINDOW + 3
    presence.heartbeat(room.alice, "online")
    assert told(bobs) == [(room.alice, "online"), (room.alice, "offline")]

    # When that heartbeat runs out too and the sweep runs
    at.at = T0 + 2 * WINDOW + 4
    swept = presence.sweep()

    # Then Bob, who was last told offline, is not told it twice; she leaves the index
    assert swept == 0
    assert told(bobs) == [(room.alice, "online"), (room.alice, "offline")]
    assert not indexed(room.alice)


def test_sweep_reads_its_index_after_the_base_model_was_used(room: Room, at: Clock) -> None:
    # Given a container whose first chat call went through ChatItem itself, before any
    # presence call (PynamoDB would hand PresenceModel the base's connection, without gsi1)
    PresenceModel._connection = None
    assert ChatItem.count(channel_key(room.channel_id)) > 0
    presence.heartbeat(room.alice, "online")

    # Then the sweep still reads its index
    at.at = T0 + WINDOW + 1
    assert presence.sweep() == 1
    # For every model owns its connection from the start: none takes over its base's
    assert all("_connection" in vars(model) for model in ChatItem.__subclasses__())


def test_sweep_function_answers_how_many_it_told(room: Room, at: Clock) -> None:
    presence.heartbeat(room.alice, "online")
    at.at = T0 + WINDOW + 1

    answer = load_handler("chat/sweep_presence").lambda_handler({}, FakeContext())

    assert answer == {"offline": 1}


# --- a channel's presence -------------------------------------------------------------------


def test_channel_presence_answers_each_members_status(room: Room, at: Clock) -> None:
    # Given Alice online, Bob away, Carol a member who never heartbeated, Dave one gone offline
    channels.join(user_id=room.carol, channel_id=room.channel_id, password=None)
    dave = room.org.member("member")["subject_id"]
    channels.join(user_id=dave, channel_id=room.channel_id, password=None)
    presence.heartbeat(room.alice, "online")
    presence.heartbeat(room.bob, "away")
    presence.heartbeat(dave, "offline")

    # When Bob reads the channel's presence
    at.at = T0 + 1
    found, cursor = presence.channel_presence(
        user_id=room.bob, channel_id=room.channel_id, limit=None, cursor=None
    )

    # Then each member is there once, with what their last heartbeat says now
    assert cursor is None
    assert len(found) == 4
    assert {p.user_id: (p.status, p.seen_at, p.until) for p in found} == {
        room.alice: ("online", clock.utc_iso(T0), clock.utc_iso(T0 + WINDOW)),
        room.bob: ("away", clock.utc_iso(T0), clock.utc_iso(T0 + WINDOW)),
        room.carol: ("offline", None, None),
        dave: ("offline", clock.utc_iso(T0), None),
    }


def test_channel_presence_pages_through_the_members(room: Room) -> None:
    channels.join(user_id=room.carol, channel_id=room.channel_id, password=None)

    first, cursor = presence.channel_presence(
        user_id=room.alice, channel_id=room.channel_id, limit=2, cursor=None
    )
    rest, end = presence.channel_presence(
        user_id=room.alice, channel_id=room.channel_id, limit=2, cursor=cursor
    )

    assert (len(first), len(rest), end) == (2, 1, None)
    assert {p.user_id for p in first + rest} == {room.alice, room.bob, room.carol}


def test_channel_presence_of_a_channel_not_visible_is_not_found(room: Room) -> None:
    # Given a private channel Carol is not invited to
    private = new_channel(room.org_id, room.alice, visibility="private")

    # Then neither the stranger nor Carol learns who is there
    with pytest.raises(NotFound):
        presence.channel_presence(
            user_id=room.stranger, channel_id=room.channel_id, limit=None, cursor=None
        )
    with pytest.raises(NotFound):
        presence.channel_presence(user_id=room.carol, channel_id=private, limit=None, cursor=None)


def test_get_presence_answers_the_page_and_404_for_another_org(
    room: Room, call_api: Callable[..., dict[str, Any]]
) -> None:
    presence.heartbeat(room.alice, "online")
    path = f"/api/v1/chat/channels/{room.channel_id}/presence"

    def get(user_id: str) -> dict[str, Any]:
        return call_api(
            "chat/get_presence",
            "GET",
            path,
            resource="/api/v1/chat/channels/{channel_id}/presence",
            path_parameters={"channel_id": room.channel_id},
            principal=principal_for(user_id),
        )

    mine, theirs = get(room.bob), get(room.stranger)

    assert mine["statusCode"] == 200, mine["body"]
    assert mine["json"]["next_cursor"] is None
    statuses = {p["user_id"]: (p["status"], p["until"]) for p in mine["json"]["items"]}
    assert statuses == {
        room.alice: ("online", clock.utc_iso(T0 + WINDOW)),
        room.bob: ("offline", None),
    }
    assert theirs["statusCode"] == 404
    assert theirs["json"]["type"] == f"{PROBLEM}not-found"


# --- typing ---------------------------------------------------------------------------------


def test_typing_is_pushed_to_the_channel_and_stores_nothing(room: Room) -> None:
    # Given Bob on the room, Carol on a channel of her own
    bobs = on_chat(room.bob, room.channel_id)
    carols = on_chat(room.carol, new_channel(room.org_id, room.carol))
    before = chat_items()

    # When Alice types in the room
    presence.typing(room.alice, room.channel_id)

    # Then Bob is told who types where and when, Carol nothing, and no item is stored
    assert posted_to(bobs) == [
        {
            "event": "typing",
            "channel_id": room.channel_id,
            "user_id": room.alice,
            "at": clock.utc_iso(T0),
        }
    ]
    assert posted_to(carols) == []
    assert chat_items() == before


@pytest.mark.parametrize(("who", "refusal"), [("carol", Forbidden), ("stranger", NotFound)])
def test_typing_is_refused_for_a_non_member(room: Room, who: str, refusal: type) -> None:
    # Carol may see the public channel but has not joined it; the stranger may not see it
    bobs = on_chat(room.bob, room.channel_id)

    with pytest.raises(refusal):
        presence.typing(getattr(room, who), room.channel_id)

    assert posted_to(bobs) == []


# --- the WebSocket handlers -----------------------------------------------------------------


def test_ws_presence_answers_what_was_recorded(
    room: Room, chat_ws: Callable[..., list[dict[str, Any]]]
) -> None:
    bobs = on_chat(room.bob, room.channel_id)
    alices = websocket_connection(room.alice)

    replies = chat_ws(
        "presence", alices, room.alice, {"action": "presence", "status": "online", "id": "hb-1"}
    )

    assert replies == [
        {
            "event": "presence_recorded",
            "id": "hb-1",
            "user_id": room.alice,
            "status": "online",
            "seen_at": clock.utc_iso(T0),
            "until": clock.utc_iso(T0 + WINDOW),
        }
    ]
    assert told(bobs) == [(room.alice, "online")]


def test_ws_presence_refuses_a_status_it_does_not_know(
    room: Room, chat_ws: Callable[..., list[dict[str, Any]]]
) -> None:
    alices = websocket_connection(room.alice)

    [reply] = chat_ws(
        "presence", alices, room.alice, {"action": "presence", "status": "busy", "id": "hb-2"}
    )

    assert (reply["event"], reply["id"], reply["problem"]["status"]) == ("error", "hb-2", 422)
    assert [e["field"] for e in reply["problem"]["errors"]] == ["status"]


def test_ws_typing_sends_no_reply_and_refuses_a_stranger_with_404(
    room: Room, chat_ws: Callable[..., list[dict[str, Any]]]
) -> None:
    bobs = on_chat(room.bob, room.channel_id)
    alices, strangers = websocket_connection(room.alice), websocket_connection(room.stranger)
    frame = {"action": "typing", "channel_id": room.channel_id, "id": "t-1"}

    assert chat_ws("typing", alices, room.alice, frame) == []
    [reply] = chat_ws("typing", strangers, room.stranger, frame)

    assert [m["user_id"] for m in events(bobs, "typing")] == [room.alice]
    assert (reply["event"], reply["id"]) == ("error", "t-1")
    assert (reply["problem"]["status"], reply["problem"]["type"]) == (404, f"{PROBLEM}not-found")


@pytest.mark.parametrize(
    ("route", "limit", "answered"),
    [
        ("presence", abuse_limits.PRESENCE_PER_CONNECTION, ["presence_recorded"]),
        ("typing", abuse_limits.TYPING_PER_CONNECTION, []),
    ],
)
def test_ws_frames_past_the_connection_limit_get_429(
    room: Room,
    chat_ws: Callable[..., list[dict[str, Any]]],
    route: str,
    limit: Limit,
    answered: list[str],
) -> None:
    # Given Alice's connection as many frames as its limit allows in the window
    alices = websocket_connection(room.alice)
    body = {"action": route, "status": "online", "channel_id": room.channel_id}
    body.pop("channel_id" if route == "presence" else "status")
    for n in range(limit.limit):
        chat_ws(route, alices, room.alice, {**body, "id": f"f-{n}"})
    assert events(alices, "error") == []

    # When she sends one more on it
    replies = chat_ws(route, alices, room.alice, {**body, "id": "one-too-many"})

    # Then it is a 429 problem saying when the window ends; another connection still sends
    reply = replies[-1]
    assert (reply["event"], reply["id"]) == ("error", "one-too-many")
    assert reply["problem"]["status"] == 429
    assert reply["problem"]["type"] == f"{PROBLEM}rate-limited"
    assert reply["problem"]["limit"] == limit.name
    assert reply["problem"]["retry_after"] == limit.window_seconds  # the window began at T0
    other = websocket_connection(room.alice)
    assert [m["event"] for m in chat_ws(route, other, room.alice, body)] == answered
