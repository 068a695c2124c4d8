"""Collaborative sketches end to end on the local stack (ADR 29), with real HTTP and WebSocket
clients: strokes drawn over the socket reach the sketch's viewers in one numbered order; a
sketch past a segment is compacted by the queue's consumer, and its replay (segment files plus
tail) is, operation for operation, what the viewers saw and what `strokes` pages through; the
SVG follows erases and restores; a user of another org finds no sketch on the socket or any
route; a message carries a sketch; and a deleted channel takes its sketches with it."""

from __future__ import annotations

import gzip
import json
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.integration import test_realtime
from tests.integration.conftest import Api, Outbox, signed_up_user
from tests.integration.test_chat import (
    CHAT,
    _join,
    _member,
    _message,
    _new_channel,
    _ok,
    _page,
    _problem,
    _watching,
)
from tests.integration.test_media import _new_org
from tests.integration.test_realtime import DEADLINE_SECONDS, Live

# The live stream's fixture, shared with the realtime tests (bound by assignment: an import
# that a test's argument shadows reads to linters as unused).
open_live = test_realtime.open_live

OpenLive = Callable[..., Live]
Person = dict[str, Any]
SVG = "{http://www.w3.org/2000/svg}"
# kumo.chat.segments.SEGMENT_SIZE (a module that needs the functions' settings to import).
SEGMENT_SIZE = 200
# The compaction consumer runs once the draw that fills a segment has queued it.
COMPACTION_DEADLINE_SECONDS = 60.0


@pytest.fixture(scope="module")
def studio(api: Api, outbox: Outbox) -> dict[str, Any]:
    """An org of this module's own: its owner and a member, and a user of another org."""
    owner = signed_up_user(api, outbox, "sketch-owner")
    org_id = _new_org(api, owner["access_token"], "Sketch Lab")
    outsider = signed_up_user(api, outbox, "sketch-outsider")
    _new_org(api, outsider["access_token"], "Elsewhere")
    return {
        "org_id": org_id,
        "owner": owner,
        "alice": _member(api, outbox, owner["access_token"], org_id, "sketch-alice", "member"),
        "outsider": outsider,
    }


# --- helpers ----------------------------------------------------------------------------------


def _room(api: Api, studio: dict[str, Any], prefix: str) -> str:
    """A channel of the owner's that alice joined."""
    channel_id = _new_channel(api, studio["owner"], studio["org_id"], prefix)
    _ok(_join(api, studio["alice"], channel_id))
    return channel_id


def _sketches(channel_id: str) -> str:
    return f"{CHAT}/{channel_id}/sketches"


def _new_sketch(api: Api, person: Person, channel_id: str, **fields: Any) -> dict[str, Any]:
    body = {"title": "plan", **fields}
    return _ok(api.post(_sketches(channel_id), token=person["access_token"], json=body), 201)


def _stroke(*points: tuple[float, float]) -> dict[str, Any]:
    return {
        "kind": "stroke",
        "tool": "pen",
        "color": "#336699",
        "width": 3,
        "points": [list(p) for p in points or [(10, 20), (30, 40)]],
    }


def _draw(live: Live, sketch_id: str, op: dict[str, Any], **fields: Any) -> dict[str, Any]:
    reply = live.request({"action": "draw", "sketch_id": sketch_id, "op": op, **fields})
    assert reply["event"] == "drawn", reply
    return reply


def _viewing(open_live: OpenLive, person: Person, sketch_id: str) -> Live:
    live = open_live(person["access_token"])
    ack = live.request({"action": "subscribe", "channel": "sketch", "sketch_id": sketch_id})
    assert (ack["event"], ack.get("sketch_id")) == ("subscribed", sketch_id), ack
    return live


def _op_seq(sketch_id: str, seq: int) -> Callable[[dict[str, Any]], bool]:
    return lambda m: (
        m.get("event") == "sketch_op" and m["sketch_id"] == sketch_id and m["op"]["seq"] == seq
    )


def _seen(live: Live, sketch_id: str) -> list[dict[str, Any]]:
    """The operations pushed to this socket for the sketch, in the order they arrived."""
    return [
        m["op"]
        for m in live.received
        if m.get("event") == "sketch_op" and m["sketch_id"] == sketch_id
    ]


def _strokes(api: Api, person: Person, path: str, after_seq: int = 0) -> list[dict[str, Any]]:
    """Every operation after `after_seq`, following the cursors to the end."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"after_seq": after_seq, "limit": 100}
    while True:
        page = _ok(api.get(f"{path}/strokes", token=person["access_token"], params=params))
        found.extend(page["items"])
        if page["next_cursor"] is None:
            return found
        params["cursor"] = page["next_cursor"]


def _segment_ops(url: str) -> list[dict[str, Any]]:
    """A segment's operations, from its link (an HTTP client may undo the gzip itself, as a
    browser does, since the file is served with Content-Encoding: gzip)."""
    fetched = requests.get(url, timeout=30)
    assert fetched.status_code == 200, fetched.text
    raw = fetched.content
    ops: list[dict[str, Any]] = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    return ops


def _replay_with_a_segment(api: Api, person: Person, path: str) -> dict[str, Any]:
    deadline = time.monotonic() + COMPACTION_DEADLINE_SECONDS
    while True:
        replay = _ok(api.get(f"{path}/replay", token=person["access_token"]))
        if replay["segments"] or time.monotonic() > deadline:
            return replay
        time.sleep(0.5)


def _svg_elements(api: Api, person: Person, path: str) -> list[str]:
    """The picture's elements after its background, by tag."""
    answer = api.get(f"{path}/svg", token=person["access_token"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("image/svg+xml"), answer.headers
    root = ElementTree.fromstring(answer.text)  # noqa: S314 - the stack's own output
    assert root.tag == f"{SVG}svg"
    tags = [child.tag.removeprefix(SVG) for child in root]
    assert tags[0] == "rect", tags
    return tags[1:]


# --- tests ------------------------------------------------------------------------------------


def test_strokes_drawn_over_the_socket_reach_the_viewers_in_order(
    api: Api, studio: dict[str, Any], open_live: OpenLive
) -> None:
    # Given alice's sketch in a channel, the owner viewing it
    owner, alice = studio["owner"], studio["alice"]
    channel_id = _room(api, studio, "drawing")
    sketch = _new_sketch(api, alice, channel_id, width=640, height=480)
    viewer = _viewing(open_live, owner, sketch["id"])
    drawer = open_live(alice["access_token"])

    # When alice draws three strokes over the socket
    replies = [_draw(drawer, sketch["id"], _stroke((n, n), (n + 5, n + 9))) for n in range(3)]

    # Then she gets each back, numbered 1, 2, 3, as stored
    ops = [reply["op"] for reply in replies]
    assert [op["seq"] for op in ops] == [1, 2, 3]
    assert all(r["replayed"] is False and r["op"]["author_id"] == alice["id"] for r in replies)
    assert ops[0]["op"] == _stroke((0, 0), (5, 9))

    # And the viewer receives the same three, in that order
    viewer.wait_for(_op_seq(sketch["id"], 3))
    assert _seen(viewer, sketch["id"]) == ops
    path = f"{_sketches(channel_id)}/{sketch['id']}"
    assert _ok(api.get(path, token=owner["access_token"]))["last_seq"] == 3


def test_a_replay_is_what_the_viewers_saw_operation_for_operation(
    api: Api, studio: dict[str, Any], open_live: OpenLive
) -> None:
    # Given a viewer of alice's sketch
    owner, alice = studio["owner"], studio["alice"]
    channel_id = _room(api, studio, "replay")
    sketch = _new_sketch(api, alice, channel_id, title="mural")
    path = f"{_sketches(channel_id)}/{sketch['id']}"
    viewer = _viewing(open_live, owner, sketch["id"])
    drawer = open_live(alice["access_token"])

    # When alice draws past a segment: strokes, and a few erases and restores among them
    total = SEGMENT_SIZE + 5
    for n in range(1, total + 1):
        if n % 50 == 0:
            op = {"kind": "erase", "strokes": [n - 1, n - 2]}
        elif n % 50 == 1 and n > 1:
            op = {"kind": "restore", "strokes": [n - 3]}
        else:
            op = _stroke((n % 600, n % 400), ((n * 7) % 600, (n * 3) % 400))
        assert _draw(drawer, sketch["id"], op)["op"]["seq"] == n
        if n % 25 == 0:
            viewer.drain(0.01)  # keep the viewer's socket read as it goes
    viewer.wait_for(_op_seq(sketch["id"], total))

    # Then the queue's consumer compacts the first segment
    replay = _replay_with_a_segment(api, owner, path)
    assert [(s["first_seq"], s["last_seq"]) for s in replay["segments"]] == [(1, SEGMENT_SIZE)], (
        f"no segment within {COMPACTION_DEADLINE_SECONDS} s: {replay['segments']}"
    )
    assert (replay["last_seq"], replay["tail_next_seq"]) == (total, None)

    # And its file plus the tail is, op for op, what the viewer got and what strokes pages
    replayed = [op for s in replay["segments"] for op in _segment_ops(s["url"])] + replay["tail"]
    assert [op["seq"] for op in replayed] == list(range(1, total + 1))
    assert replayed == _seen(viewer, sketch["id"])
    assert replayed == _strokes(api, owner, path)
    assert _strokes(api, owner, path, after_seq=SEGMENT_SIZE) == replay["tail"]


def test_the_svg_follows_erases_and_restores(
    api: Api, studio: dict[str, Any], open_live: OpenLive
) -> None:
    # Given three strokes, the last a single point
    owner, alice = studio["owner"], studio["alice"]
    channel_id = _room(api, studio, "svg")
    sketch = _new_sketch(api, alice, channel_id, title="<script>alert(1)</script>")
    path = f"{_sketches(channel_id)}/{sketch['id']}"
    drawer = open_live(alice["access_token"])
    for op in (_stroke((1, 1), (9, 9)), _stroke((2, 2), (8, 3)), _stroke((5, 5))):
        _draw(drawer, sketch["id"], op)
    assert _svg_elements(api, owner, path) == ["polyline", "polyline", "circle"]

    # When the first two are erased, then the first restored
    _draw(drawer, sketch["id"], {"kind": "erase", "strokes": [1, 2]})
    erased = _svg_elements(api, owner, path)
    _draw(drawer, sketch["id"], {"kind": "restore", "strokes": [1]})
    restored = _svg_elements(api, owner, path)

    # Then the picture shows one stroke, then two, and never the title's script
    assert erased == ["circle"]
    assert restored == ["polyline", "circle"]
    picture = api.get(f"{path}/svg", token=owner["access_token"]).text
    assert "script" not in picture and "alert" not in picture


def test_another_orgs_user_finds_no_sketch_on_the_socket_or_any_route(
    api: Api, studio: dict[str, Any], open_live: OpenLive
) -> None:
    # Given alice's sketch with a stroke
    alice, outsider = studio["alice"], studio["outsider"]
    channel_id = _room(api, studio, "private-art")
    sketch = _new_sketch(api, alice, channel_id)
    _draw(open_live(alice["access_token"]), sketch["id"], _stroke())
    path = f"{_sketches(channel_id)}/{sketch['id']}"

    # When the outsider subscribes to it and draws on it over the socket
    live = open_live(outsider["access_token"])
    subscribed = live.request(
        {"action": "subscribe", "channel": "sketch", "sketch_id": sketch["id"]}
    )
    drew = live.request({"action": "draw", "sketch_id": sketch["id"], "op": _stroke()})

    # Then both are 404 problems
    for reply in (subscribed, drew):
        assert reply["event"] == "error", reply
        assert (reply["problem"]["status"], reply["problem"]["type"]) == (
            404,
            "urn:kumo:problem:not-found",
        )

    # And every sketch route answers 404
    routes = [
        ("GET", _sketches(channel_id), None),
        ("POST", _sketches(channel_id), {"title": "mine now"}),
        ("GET", path, None),
        ("GET", f"{path}/replay", None),
        ("GET", f"{path}/strokes", None),
        ("GET", f"{path}/svg", None),
    ]
    for method, route, body in routes:
        _problem(
            api.call(method, route, token=outsider["access_token"], json=body), 404, "not-found"
        )

    # And the sketch is as alice left it
    assert _ok(api.get(path, token=alice["access_token"]))["last_seq"] == 1


def test_a_message_carries_the_sketch_as_it_was_when_sent(
    api: Api, studio: dict[str, Any], open_live: OpenLive
) -> None:
    # Given a sketch of two strokes, and the owner on the channel
    owner, alice = studio["owner"], studio["alice"]
    channel_id = _room(api, studio, "share")
    sketch = _new_sketch(api, alice, channel_id, title="idea")
    drawer = open_live(alice["access_token"])
    for _ in range(2):
        _draw(drawer, sketch["id"], _stroke())
    chat = _watching(open_live, owner, channel_id)

    # When alice sends it in a message, then draws on
    sent = api.post(
        f"{CHAT}/{channel_id}/messages",
        token=alice["access_token"],
        json={"text": "look", "sketch_id": sketch["id"]},
    )
    _draw(drawer, sketch["id"], _stroke())

    # Then the message shows the sketch at operation 2, pushed and read back
    expected = {"id": sketch["id"], "title": "idea", "seq": 2}
    assert _ok(sent, 201)["sketch"] == expected
    assert chat.wait_for(_message(channel_id, 1))["message"]["sketch"] == expected
    assert [m["sketch"] for m in _page(api, owner, channel_id)["items"]] == [expected]

    # And a sketch of another channel is refused on sketch_id
    elsewhere = _room(api, studio, "elsewhere")
    refused = api.post(
        f"{CHAT}/{elsewhere}/messages",
        token=alice["access_token"],
        json={"text": "look", "sketch_id": sketch["id"]},
    )
    problem = _problem(refused, 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == ["sketch_id"]


def test_deleting_the_channel_takes_its_sketch_with_it(
    api: Api, studio: dict[str, Any], open_live: OpenLive
) -> None:
    # Given alice's sketch with a stroke in the owner's channel
    owner, alice = studio["owner"], studio["alice"]
    channel_id = _room(api, studio, "doomed")
    sketch = _new_sketch(api, alice, channel_id)
    drawer = open_live(alice["access_token"])
    _draw(drawer, sketch["id"], _stroke())
    path = f"{_sketches(channel_id)}/{sketch['id']}"

    # When the owner deletes the channel
    deleted = api.delete(f"{CHAT}/{channel_id}", token=owner["access_token"])
    assert deleted.status_code == 204, deleted.text

    # Then the sketch is gone: 404 on its routes, and on the socket
    for route in (path, f"{path}/replay", f"{path}/strokes", f"{path}/svg"):
        _problem(api.get(route, token=alice["access_token"]), 404, "not-found")
    for frame in (
        {"action": "subscribe", "channel": "sketch", "sketch_id": sketch["id"]},
        {"action": "draw", "sketch_id": sketch["id"], "op": _stroke(), "client_id": "late"},
    ):
        reply = drawer.request(frame)
        assert (reply["event"], reply["problem"]["status"]) == ("error", 404), reply


def test_a_retried_draw_is_stored_once(
    api: Api, studio: dict[str, Any], open_live: OpenLive
) -> None:
    # Given a viewer, and a stroke alice drew with a client id
    owner, alice = studio["owner"], studio["alice"]
    channel_id = _room(api, studio, "retry")
    sketch = _new_sketch(api, alice, channel_id)
    viewer = _viewing(open_live, owner, sketch["id"])
    drawer = open_live(alice["access_token"])
    client_id = uuid.uuid4().hex
    first = _draw(drawer, sketch["id"], _stroke(), client_id=client_id)

    # When she sends it again (its answer lost), then one more stroke
    again = _draw(drawer, sketch["id"], _stroke(), client_id=client_id)
    after = _draw(drawer, sketch["id"], _stroke((1, 1)))

    # Then the retry answers the first, and the viewer got the first and the next only
    assert (again["replayed"], again["op"]) == (True, first["op"])
    assert after["op"]["seq"] == 2
    viewer.wait_for(_op_seq(sketch["id"], 2), timeout=DEADLINE_SECONDS)
    assert [op["seq"] for op in _seen(viewer, sketch["id"])] == [1, 2]
