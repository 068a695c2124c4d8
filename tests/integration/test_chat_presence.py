"""Chat presence and typing end to end on the local stack (ADR 29), with real WebSocket clients:
a member's heartbeat reaches the other members of a shared channel and GET .../presence;
typing notices reach the channel's members, and a user of another org gets the 404 of a
channel that does not exist; and a member whose socket stays open but silent goes offline
once the heartbeat window is over, told by the sweep (no $disconnect involved).

One heartbeat's window has to run out, so the module is built around one wait: Bob's silent
socket heartbeats once when the module starts, the other tests run inside his window, and the
last one waits for the sweep's offline push.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from tests.integration import test_realtime
from tests.integration.conftest import Api, Outbox, signed_up_user
from tests.integration.test_chat import (
    CHAT,
    PROBLEM,
    OpenLive,
    Person,
    _join,
    _member,
    _new_channel,
    _ok,
    _ping_behind_pushes,
    _problem,
    _watching,
)
from tests.integration.test_media import _new_org
from tests.integration.test_realtime import Live

# The live stream's fixture, shared with the realtime tests (bound by assignment: an import
# that a test's argument shadows reads to linters as unused).
open_live = test_realtime.open_live

# After the window, the sweep (EventBridge, each minute; the engine's scheduler ticks every
# 10 s) tells the channels within this long.
SWEEP_SECONDS = 75.0


@dataclass(frozen=True)
class Room:
    """A channel of Alice's that Bob joined, and Bob's heartbeat."""

    channel_id: str
    alice: Person
    bob: Person
    # Alice's socket, subscribed to the channel since before Bob's heartbeat.
    watcher: Live
    # Bob's socket, subscribed to the channel: one heartbeat, then not a frame more.
    silent: Live
    recorded: dict[str, Any]
    heartbeat_at: float  # time.monotonic() when the heartbeat was sent

    @property
    def window_seconds(self) -> float:
        return _instant(self.recorded["until"]) - _instant(self.recorded["seen_at"])


@pytest.fixture(scope="module")
def room(api: Api, outbox: Outbox, open_live: OpenLive) -> Room:
    alice = signed_up_user(api, outbox, "presence-alice")
    org_id = _new_org(api, alice["access_token"], "Presence Lab")
    bob = _member(api, outbox, alice["access_token"], org_id, "presence-bob", "member")
    channel_id = _new_channel(api, alice, org_id, "presence")
    _ok(_join(api, bob, channel_id))
    watcher = _watching(open_live, alice, channel_id)
    silent = _watching(open_live, bob, channel_id)
    heartbeat_at = time.monotonic()
    recorded = silent.request({"action": "presence", "status": "online"})
    return Room(channel_id, alice, bob, watcher, silent, recorded, heartbeat_at)


@pytest.fixture(scope="module")
def stranger(api: Api, outbox: Outbox) -> Person:
    """A user with an org of their own; signed up within Bob's window, which it does not need."""
    person = signed_up_user(api, outbox, "presence-stranger")
    _new_org(api, person["access_token"], "Elsewhere")
    return person


def _instant(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _presence(api: Api, person: Person, channel_id: str) -> dict[str, dict[str, Any]]:
    """GET .../presence: each member's presence by user id."""
    page = _ok(api.get(f"{CHAT}/{channel_id}/presence", token=person["access_token"]))
    assert page["next_cursor"] is None, page
    return {p["user_id"]: p for p in page["items"]}


def _told(user_id: str, status: str) -> Any:
    return lambda m: (
        m.get("event") == "presence" and m["user_id"] == user_id and m["status"] == status
    )


def test_a_heartbeat_reaches_the_other_member_and_the_presence_route(api: Api, room: Room) -> None:
    # Given Bob's heartbeat, recorded online with the window's deadline
    bob = room.bob["id"]
    assert room.recorded == {
        "event": "presence_recorded",
        "id": room.recorded["id"],
        "user_id": bob,
        "status": "online",
        "seen_at": room.recorded["seen_at"],
        "until": room.recorded["until"],
    }
    assert 0 < room.window_seconds <= 120, room.recorded

    # Then Alice's socket is told he is online until then
    told = room.watcher.wait_for(_told(bob, "online"))
    assert told == {
        "event": "presence",
        "user_id": bob,
        "status": "online",
        "until": room.recorded["until"],
    }

    # And the channel's presence shows him online with his deadline, Alice offline
    members = _presence(api, room.alice, room.channel_id)
    assert members == {
        bob: {
            "user_id": bob,
            "status": "online",
            "seen_at": room.recorded["seen_at"],
            "until": room.recorded["until"],
        },
        room.alice["id"]: {
            "user_id": room.alice["id"],
            "status": "offline",
            "seen_at": None,
            "until": None,
        },
    }


def test_typing_reaches_the_members_and_a_stranger_gets_404(
    api: Api, room: Room, stranger: Person, open_live: OpenLive
) -> None:
    # When Alice types in the channel
    room.watcher.send({"action": "typing", "channel_id": room.channel_id, "id": "typing-1"})

    # Then Bob's socket is told who types where, and Alice gets no reply
    typing = room.silent.wait_for(lambda m: m.get("event") == "typing")
    assert (typing["channel_id"], typing["user_id"]) == (room.channel_id, room.alice["id"])
    assert typing["at"].endswith("Z")
    _ping_behind_pushes(room.watcher)
    assert [m for m in room.watcher.received if m.get("id") == "typing-1"] == []

    # When a user of another org types there, or reads its presence
    theirs = open_live(stranger["access_token"])
    refused = theirs.request({"action": "typing", "channel_id": room.channel_id})
    answer = api.get(f"{CHAT}/{room.channel_id}/presence", token=stranger["access_token"])

    # Then both are the 404 of a channel that does not exist
    problem = refused["problem"]
    assert (refused["event"], problem["status"], problem["type"]) == (
        "error",
        404,
        PROBLEM + "not-found",
    ), refused
    _problem(answer, 404, "not-found")


def test_a_silent_socket_goes_offline_after_the_window_without_a_disconnect(
    api: Api, room: Room
) -> None:
    # Given Bob's socket, open since its one heartbeat and silent
    bob = room.bob["id"]
    deadline = room.window_seconds + SWEEP_SECONDS

    # When the window runs out, then Alice's socket is told he is offline, by the sweep
    left = deadline - (time.monotonic() - room.heartbeat_at)
    told = room.watcher.wait_for(_told(bob, "offline"), timeout=left)
    after = time.monotonic() - room.heartbeat_at
    assert told == {"event": "presence", "user_id": bob, "status": "offline", "until": None}
    assert room.window_seconds - 1 <= after <= deadline, after

    # And the channel's presence shows him offline, with his last heartbeat
    assert _presence(api, room.alice, room.channel_id)[bob] == {
        "user_id": bob,
        "status": "offline",
        "seen_at": room.recorded["seen_at"],
        "until": None,
    }

    # And his own socket, still open, got his own changes and Alice's one notice, nothing else
    # (his change is pushed before the heartbeat's reply is posted)
    room.silent.wait_for(_told(bob, "offline"), timeout=10)
    assert [(m["event"], m.get("user_id"), m.get("status")) for m in room.silent.received] == [
        ("subscribed", None, None),
        ("presence", bob, "online"),
        ("presence_recorded", bob, "online"),
        ("typing", room.alice["id"], None),
        ("presence", bob, "offline"),
    ]
