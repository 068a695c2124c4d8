"""Chat end to end on the local stack (ADR 29), with real HTTP and WebSocket clients: members
of a channel see each other's messages in one numbered order, whether sent over HTTP or the
socket; a member back from a gap catches up with `after_seq`; a retried send is stored once;
passwords, private channels, invitations, removals and deletion; attachments of the org's
own files only; the message allowance; edits, deletions and read markers; and a user of
another org finds no channel at all."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from kumo.core import abuse_limits
from PIL import Image

from tests.integration import test_realtime
from tests.integration.conftest import Api, Outbox, signed_up_user
from tests.integration.test_media import _new_org, _png, _upload
from tests.integration.test_realtime import Live

# The live stream's fixture, shared with the realtime tests (bound by assignment: an import
# that a test's argument shadows reads to linters as unused).
open_live = test_realtime.open_live

CHAT = "/api/v1/chat/channels"
PROBLEM = "urn:kumo:problem:"
PROBLEM_JSON = "application/problem+json"
PASSWORD = "open sesame"

OpenLive = Callable[..., Live]
Person = dict[str, Any]


# --- the org ----------------------------------------------------------------------------------


def _member(api: Api, outbox: Outbox, owner: str, org_id: str, prefix: str, role: str) -> Person:
    """A new user, invited to the org with `role` and accepted through the mailed token."""
    person = signed_up_user(api, outbox, prefix)
    invited = api.post(
        f"/api/v1/orgs/{org_id}/invitations",
        token=owner,
        json={"email": person["email"], "role": role},
    )
    assert invited.status_code == 201, invited.text
    token = Outbox.token(outbox.wait_for(person["email"], "invited you"))
    accepted = api.post(
        "/api/v1/invitations/accept", token=person["access_token"], json={"token": token}
    )
    assert accepted.status_code == 200, accepted.text
    return person


@pytest.fixture(scope="module")
def team(api: Api, outbox: Outbox) -> dict[str, Any]:
    """An org of this module's own: its owner, three members (one an admin), one member kept
    for the message allowance alone, and a user of another org."""
    owner = signed_up_user(api, outbox, "chat-owner")
    org_id = _new_org(api, owner["access_token"], "Chat Lab")

    def join(prefix: str, role: str = "member") -> Person:
        return _member(api, outbox, owner["access_token"], org_id, prefix, role)

    outsider = signed_up_user(api, outbox, "chat-outsider")
    return {
        "org_id": org_id,
        "owner": owner,
        "alice": join("chat-alice"),
        "bob": join("chat-bob"),
        "carol": join("chat-carol", "admin"),
        "chatty": join("chat-chatty"),
        "outsider": outsider,
        "outsider_org": _new_org(api, outsider["access_token"], "Elsewhere"),
    }


# --- helpers ----------------------------------------------------------------------------------


def _ok(answer: requests.Response, status: int = 200) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _problem(answer: requests.Response, status: int, slug: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == PROBLEM_JSON, answer.headers
    body: dict[str, Any] = answer.json()
    assert (body["type"], body["status"]) == (PROBLEM + slug, status), body
    return body


def _new_channel(api: Api, person: Person, org_id: str, prefix: str, **fields: Any) -> str:
    body = {"org_id": org_id, "name": f"{prefix}-{uuid.uuid4().hex[:6]}", **fields}
    created = _ok(api.post(CHAT, token=person["access_token"], json=body), 201)
    assert created["joined"] is True and created["created_by"] == person["id"], created
    channel_id: str = created["id"]
    return channel_id


def _channel(api: Api, person: Person, channel_id: str) -> dict[str, Any]:
    return _ok(api.get(f"{CHAT}/{channel_id}", token=person["access_token"]))


def _join(
    api: Api, person: Person, channel_id: str, password: str | None = None
) -> requests.Response:
    body = {} if password is None else {"password": password}
    return api.post(f"{CHAT}/{channel_id}/join", token=person["access_token"], json=body)


def _post(api: Api, person: Person, channel_id: str, text: str, **fields: Any) -> dict[str, Any]:
    answer = api.post(
        f"{CHAT}/{channel_id}/messages", token=person["access_token"], json={"text": text, **fields}
    )
    return _ok(answer, 201)


def _page(api: Api, person: Person, channel_id: str, **params: Any) -> dict[str, Any]:
    answer = api.get(f"{CHAT}/{channel_id}/messages", token=person["access_token"], params=params)
    return _ok(answer)


def _seqs(items: list[dict[str, Any]]) -> list[int]:
    return [int(item["seq"]) for item in items]


def _subscribe(live: Live, channel_id: str | None = None) -> None:
    """To a chat channel, or without one to the user's own channel."""
    target = {"channel": "chat", "channel_id": channel_id} if channel_id else {"channel": "user"}
    ack = live.request({"action": "subscribe", **target})
    assert ack["event"] == "subscribed", ack


def _watching(open_live: OpenLive, person: Person, channel_id: str | None = None) -> Live:
    live = open_live(person["access_token"])
    _subscribe(live, channel_id)
    return live


def _message(channel_id: str, seq: int) -> Callable[[dict[str, Any]], bool]:
    return lambda m: (
        m.get("event") == "message"
        and m["message"]["channel_id"] == channel_id
        and m["message"]["seq"] == seq
    )


def _told(event: str, channel_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("event") == event and m["channel"]["id"] == channel_id


def _seen(live: Live, channel_id: str) -> list[dict[str, Any]]:
    """The messages pushed to this socket for the channel, in the order they arrived."""
    return [
        m["message"]
        for m in live.received
        if m.get("event") == "message" and m["message"]["channel_id"] == channel_id
    ]


def _ping_behind_pushes(live: Live) -> None:
    """Ping and wait for the pong: every push of a request that has answered was posted before
    the ping, so it has arrived by then (what a socket that must get nothing is checked by)."""
    pong = live.request({"action": "ping"})
    assert pong["event"] == "pong", pong


def _send(live: Live, channel_id: str, text: str, **fields: Any) -> dict[str, Any]:
    reply = live.request(
        {"action": "send_message", "channel_id": channel_id, "text": text, **fields}
    )
    assert reply["event"] == "sent", reply
    return reply


def _in_one_window(window_seconds: int, needed_seconds: float) -> None:
    """Start a burst in a fresh fixed window when this one ends too soon, so every request of
    it counts against the same allowance (the engine runs on this machine's clock)."""
    left = window_seconds - time.time() % window_seconds
    if left < needed_seconds:
        time.sleep(left + 0.2)


# --- tests ------------------------------------------------------------------------------------


def test_members_see_each_others_messages_in_one_numbered_order(
    api: Api, team: dict[str, Any], open_live: OpenLive
) -> None:
    # Given a channel of the owner's that alice joined, both subscribed
    owner, alice = team["owner"], team["alice"]
    channel_id = _new_channel(api, owner, team["org_id"], "general")
    assert _ok(_join(api, alice, channel_id))["joined"] is True
    theirs, hers = _watching(open_live, owner, channel_id), _watching(open_live, alice, channel_id)

    # When the owner posts over HTTP, alice answers over the socket, and the owner again
    first = _post(api, owner, channel_id, "hello")
    sent = _send(hers, channel_id, "hi back")
    third = _post(api, owner, channel_id, "how are you?")

    # Then the sends are numbered 1, 2, 3
    assert (first["seq"], sent["message"]["seq"], third["seq"]) == (1, 2, 3)
    assert sent["replayed"] is False and sent["message"]["author_id"] == alice["id"]

    # And both sockets receive the three, in that order, as stored
    expected = [first, sent["message"], third]
    for live in (theirs, hers):
        live.wait_for(_message(channel_id, 3))
        assert _seen(live, channel_id) == expected
    assert _channel(api, owner, channel_id)["last_seq"] == 3


def test_a_member_back_from_a_gap_gets_exactly_what_they_missed(
    api: Api, team: dict[str, Any], open_live: OpenLive
) -> None:
    # Given bob subscribed to alice's channel, who has seen message 1
    alice, bob = team["alice"], team["bob"]
    channel_id = _new_channel(api, alice, team["org_id"], "catch-up")
    _ok(_join(api, bob, channel_id))
    live = _watching(open_live, bob, channel_id)
    _post(api, alice, channel_id, "m1")
    last_seen = live.wait_for(_message(channel_id, 1))["message"]["seq"]

    # When bob's socket closes while alice posts three more, and he connects again
    live.socket.close()
    missed = [_post(api, alice, channel_id, f"m{n}") for n in (2, 3, 4)]
    again = _watching(open_live, bob, channel_id)

    # Then after_seq answers exactly the missed ones, oldest first, with nothing after them
    caught_up = _page(api, bob, channel_id, after_seq=last_seen)
    assert caught_up["items"] == missed
    assert caught_up["next_cursor"] is None
    # And read in pages of two, without a gap between them
    first = _page(api, bob, channel_id, after_seq=last_seen, limit=2)
    rest = _page(api, bob, channel_id, after_seq=last_seen, limit=2, cursor=first["next_cursor"])
    assert (_seqs(first["items"]), _seqs(rest["items"])) == ([2, 3], [4])

    # And the new socket receives what comes next
    fifth = _post(api, alice, channel_id, "m5")
    assert again.wait_for(_message(channel_id, 5))["message"] == fifth

    # And the history is newest first, two a page, each page's cursor leading to the next
    pages: list[list[int]] = []
    cursor: str | None = None
    for _ in range(4):
        page = _page(api, bob, channel_id, limit=2, cursor=cursor)  # None is left out
        pages.append(_seqs(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [[5, 4], [3, 2], [1]]


def test_a_retried_send_is_stored_once_over_http_and_the_socket(
    api: Api, team: dict[str, Any], open_live: OpenLive
) -> None:
    # Given a channel of bob's, and his socket
    bob = team["bob"]
    channel_id = _new_channel(api, bob, team["org_id"], "retries")
    live = _watching(open_live, bob, channel_id)

    # When a POST is sent twice with one client id
    body = {"text": "once", "client_id": "http-1"}
    path = f"{CHAT}/{channel_id}/messages"
    first = api.post(path, token=bob["access_token"], json=body)
    retry = api.post(path, token=bob["access_token"], json=body)

    # Then the first stores it (201) and the retry answers the same message (200)
    assert (first.status_code, retry.status_code) == (201, 200), retry.text
    assert retry.json() == first.json() and first.json()["seq"] == 1

    # When a socket send is sent twice with another, then once with the HTTP one
    sent = _send(live, channel_id, "twice", client_id="ws-1")
    resent = _send(live, channel_id, "twice", client_id="ws-1")
    crossed = _send(live, channel_id, "once", client_id="http-1")

    # Then the socket's retries are replays of what was stored the first time
    assert (sent["replayed"], resent["replayed"], crossed["replayed"]) == (False, True, True)
    assert resent["message"] == sent["message"] and sent["message"]["seq"] == 2
    assert crossed["message"] == first.json()

    # And the channel holds two messages, pushed once each
    assert _seqs(_page(api, bob, channel_id)["items"]) == [2, 1]
    assert _channel(api, bob, channel_id)["last_seq"] == 2
    _ping_behind_pushes(live)
    assert _seqs(_seen(live, channel_id)) == [1, 2]


def test_another_orgs_user_gets_404_on_the_socket_and_every_route(
    api: Api, team: dict[str, Any], open_live: OpenLive
) -> None:
    # Given a public channel of the org with a message, and a user of another org
    owner, outsider = team["owner"], team["outsider"]
    channel_id = _new_channel(api, owner, team["org_id"], "lobby", description="ours")
    _post(api, owner, channel_id, "members only")
    before = _channel(api, owner, channel_id)

    # When the outsider subscribes to it, or sends to it, over the socket
    live = open_live(outsider["access_token"])
    refused = live.request({"action": "subscribe", "channel": "chat", "channel_id": channel_id})
    unsent = live.request({"action": "send_message", "channel_id": channel_id, "text": "hi"})

    # Then both are error frames with the 404 problem
    for reply in (refused, unsent):
        assert reply["event"] == "error", reply
        assert (reply["problem"]["status"], reply["problem"]["type"]) == (
            404,
            PROBLEM + "not-found",
        )

    # When they call every chat route for it, each with a valid body
    chat = f"{CHAT}/{channel_id}"
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", chat, None),
        ("PATCH", chat, {"description": "theirs"}),
        ("DELETE", chat, None),
        ("GET", f"{chat}/members", None),
        ("POST", f"{chat}/join", {}),
        ("POST", f"{chat}/leave", None),
        ("POST", f"{chat}/invitations", {"user_id": outsider["id"]}),
        ("DELETE", f"{chat}/members/{owner['id']}", None),
        ("POST", f"{chat}/messages", {"text": "intruder"}),
        ("GET", f"{chat}/messages", None),
        ("PATCH", f"{chat}/messages/1", {"text": "taken over"}),
        ("DELETE", f"{chat}/messages/1", None),
        ("POST", f"{chat}/read", {"seq": 1}),
        # And the org's channels, public or joined
        ("GET", f"{CHAT}?org_id={team['org_id']}&scope=public", None),
    ]
    answers = [
        api.call(method, path, token=outsider["access_token"], json=body)
        for method, path, body in calls
    ]

    # Then every answer is the 404 of a channel that does not exist
    assert [a.status_code for a in answers] == [404] * len(calls), [a.text for a in answers]
    assert {a.json()["type"] for a in answers} == {PROBLEM + "not-found"}
    # And nothing changed
    assert _channel(api, owner, channel_id) == before
    history = _page(api, owner, channel_id)["items"]
    assert [(m["seq"], m["text"], m["deleted"]) for m in history] == [(1, "members only", False)]
    members = _ok(api.get(f"{chat}/members", token=owner["access_token"]))["items"]
    assert [m["user_id"] for m in members] == [owner["id"]]


def test_a_channel_password_is_checked_and_guesses_are_limited(
    api: Api, team: dict[str, Any]
) -> None:
    # Given a public channel with a password
    channel_id = _new_channel(api, team["owner"], team["org_id"], "vault", password=PASSWORD)
    assert _channel(api, team["alice"], channel_id)["has_password"] is True

    # When alice gives a wrong password, then the right one
    wrong = _join(api, team["alice"], channel_id, "not it")
    right = _join(api, team["alice"], channel_id, PASSWORD)

    # Then the wrong one is a 403 problem, and the right one lets her in
    _problem(wrong, 403, "wrong-channel-password")
    assert _ok(right)["joined"] is True and right.json()["member_count"] == 2

    # When bob guesses wrong more often than allowed, then gives the right password
    allowed = abuse_limits.CHANNEL_PASSWORD_PER_USER
    _in_one_window(allowed.window_seconds, needed_seconds=20)
    guesses = [_join(api, team["bob"], channel_id, f"guess {n}") for n in range(allowed.limit)]
    refused = _join(api, team["bob"], channel_id, PASSWORD)

    # Then each guess is a 403, and then even the right password is a 429 with Retry-After
    for guess in guesses:
        _problem(guess, 403, "wrong-channel-password")
    _problem(refused, 429, "rate-limited")
    assert 0 < int(refused.headers["Retry-After"]) <= allowed.window_seconds
    assert _channel(api, team["bob"], channel_id)["joined"] is False


def test_a_private_channel_is_seen_by_its_invitees_and_members_only(
    api: Api, team: dict[str, Any], open_live: OpenLive
) -> None:
    # Given a private channel with a password, and bob listening on his own channel
    owner, alice, bob = team["owner"], team["alice"], team["bob"]
    channel_id = _new_channel(
        api, owner, team["org_id"], "secret", visibility="private", password=PASSWORD
    )
    live = _watching(open_live, bob)

    # And alice, in the org but not invited, finds no such channel, not even in the list
    _problem(api.get(f"{CHAT}/{channel_id}", token=alice["access_token"]), 404, "not-found")
    _problem(_join(api, alice, channel_id, PASSWORD), 404, "not-found")
    public = _ok(
        api.get(
            CHAT,
            token=alice["access_token"],
            params={"org_id": team["org_id"], "scope": "public"},
        )
    )
    assert channel_id not in [c["id"] for c in public["items"]]

    # When the owner invites bob
    invited = api.post(
        f"{CHAT}/{channel_id}/invitations", token=owner["access_token"], json={"user_id": bob["id"]}
    )

    # Then he is told on his own channel, sees it, and joins without the password
    assert invited.status_code == 204, invited.text
    told = live.wait_for(_told("channel_invitation", channel_id))
    assert (told["invited_by"], told["channel"]["org_id"]) == (owner["id"], team["org_id"])
    assert _channel(api, bob, channel_id)["joined"] is False
    assert _ok(_join(api, bob, channel_id))["joined"] is True

    # And once subscribed, he receives its messages
    _subscribe(live, channel_id)
    _post(api, owner, channel_id, "welcome")
    live.wait_for(_message(channel_id, 1))

    # When the owner removes him
    removed = api.delete(f"{CHAT}/{channel_id}/members/{bob['id']}", token=owner["access_token"])

    # Then he is told, his socket stops receiving the channel, and it is hidden from him again
    assert removed.status_code == 204, removed.text
    gone = live.wait_for(_told("channel_removed", channel_id))
    assert gone["removed_by"] == owner["id"]
    _post(api, owner, channel_id, "after you left")
    _ping_behind_pushes(live)
    assert _seqs(_seen(live, channel_id)) == [1]
    _problem(api.get(f"{CHAT}/{channel_id}", token=bob["access_token"]), 404, "not-found")


def test_the_creator_deletes_a_channel_and_its_members_are_told(
    api: Api,
    team: dict[str, Any],
    open_live: OpenLive,
    endpoints: dict[str, Any],
    aws: Callable[[str], Any],
) -> None:
    # Given alice's channel with a message, bob and carol in it listening on their own channels
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    created = api.post(
        CHAT, token=alice["access_token"], json={"org_id": team["org_id"], "name": name}
    )
    channel_id = _ok(created, 201)["id"]
    listeners = []
    for person in (bob, carol):
        _ok(_join(api, person, channel_id))
        listeners.append(_watching(open_live, person))
    _post(api, alice, channel_id, "last words")

    # When alice deletes it
    deleted = api.delete(f"{CHAT}/{channel_id}", token=alice["access_token"])

    # Then its members are told who deleted it
    assert deleted.status_code == 204, deleted.text
    for live in listeners:
        told = live.wait_for(_told("channel_deleted", channel_id))
        assert (told["deleted_by"], told["channel"]["name"]) == (alice["id"], name)

    # And it is gone for everyone, its messages with it, and its name is free again
    for person in (alice, bob):
        chat = f"{CHAT}/{channel_id}"
        _problem(api.get(chat, token=person["access_token"]), 404, "not-found")
        _problem(api.get(f"{chat}/messages", token=person["access_token"]), 404, "not-found")
    stored = aws("dynamodb").query(
        TableName=f"kumo-{endpoints['stage']}-chat",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"CHANNEL#{channel_id}"}},
        ConsistentRead=True,
    )
    assert stored["Items"] == []
    again = api.post(
        CHAT, token=alice["access_token"], json={"org_id": team["org_id"], "name": name}
    )
    assert again.status_code == 201, again.text


def test_an_attached_picture_is_linked_and_another_orgs_is_refused(
    api: Api, team: dict[str, Any]
) -> None:
    # Given a ready attachment of the org's, and one of another org's
    owner, outsider = team["owner"], team["outsider"]
    ours = _upload(
        api,
        owner["access_token"],
        team["org_id"],
        "attachment",
        "plot.png",
        _png(120, 80),
        "image/png",
    )
    theirs = _upload(
        api,
        outsider["access_token"],
        team["outsider_org"],
        "attachment",
        "elsewhere.png",
        _png(64, 64),
        "image/png",
    )
    assert (ours["state"], theirs["state"]) == ("ready", "ready"), (ours, theirs)
    channel_id = _new_channel(api, owner, team["org_id"], "pictures")

    # When a message carries the org's picture
    message = _post(api, owner, channel_id, "the plot", media_id=ours["id"])

    # Then it links to the picture, and the link downloads it
    image = message["image"]
    assert (image["media_id"], image["width"], image["height"]) == (ours["id"], 120, 80)
    downloaded = requests.get(image["original"], timeout=30)
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.headers["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(downloaded.content)) as picture:
        assert (picture.format, picture.size) == ("PNG", (120, 80))
    assert _page(api, owner, channel_id)["items"][0]["image"]["media_id"] == ours["id"]

    # When a message names the other org's picture
    refused = api.post(
        f"{CHAT}/{channel_id}/messages",
        token=owner["access_token"],
        json={"text": "not ours", "media_id": theirs["id"]},
    )

    # Then it is refused on that field, and nothing is stored
    problem = _problem(refused, 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == ["media_id"], problem
    assert _channel(api, owner, channel_id)["last_seq"] == 1
    assert _seqs(_page(api, owner, channel_id)["items"]) == [1]


def test_the_message_allowance_answers_429_with_retry_after(api: Api, team: dict[str, Any]) -> None:
    # Given a member who has sent nothing, at the start of enough of a window for a burst
    chatty = team["chatty"]
    channel_id = _new_channel(api, chatty, team["org_id"], "burst")
    allowed = abuse_limits.MESSAGE_PER_USER
    _in_one_window(allowed.window_seconds, needed_seconds=10)

    # When they send one message more than allowed, as fast as they can
    path = f"{CHAT}/{channel_id}/messages"
    answers = [
        api.post(path, token=chatty["access_token"], json={"text": f"spam {n}"})
        for n in range(allowed.limit + 1)
    ]

    # Then the allowance is stored and the next is refused with a 429 problem and Retry-After
    assert [a.status_code for a in answers[:-1]] == [201] * allowed.limit, answers[-2].text
    refused = _problem(answers[-1], 429, "rate-limited")
    assert refused["limit"] == allowed.name, refused
    assert 0 < int(answers[-1].headers["Retry-After"]) <= allowed.window_seconds
    assert _channel(api, chatty, channel_id)["last_seq"] == allowed.limit


def test_edits_and_deletions_reach_subscribers_and_need_the_author_or_an_admin(
    api: Api, team: dict[str, Any], open_live: OpenLive
) -> None:
    # Given alice's message in a channel bob and carol (an org admin) joined, bob subscribed
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    channel_id = _new_channel(api, alice, team["org_id"], "edits")
    for person in (bob, carol):
        _ok(_join(api, person, channel_id))
    live = _watching(open_live, bob, channel_id)
    seq = _post(api, alice, channel_id, "teh plan")["seq"]
    message = f"{CHAT}/{channel_id}/messages/{seq}"

    # When alice edits it
    edited = _ok(api.patch(message, token=alice["access_token"], json={"text": "the plan"}))

    # Then subscribers receive the edit
    assert edited["text"] == "the plan" and edited["edited_at"], edited
    pushed = live.wait_for(lambda m: m.get("event") == "message_edited")
    assert pushed["message"] == edited

    # And bob, neither author nor admin, may neither edit nor delete it
    _problem(
        api.patch(message, token=bob["access_token"], json={"text": "my plan"}), 403, "forbidden"
    )
    _problem(api.delete(message, token=bob["access_token"]), 403, "forbidden")

    # When carol, an org admin, deletes it
    deleted = api.delete(message, token=carol["access_token"])

    # Then subscribers are told, and it keeps its number without its text
    assert deleted.status_code == 204, deleted.text
    gone = live.wait_for(lambda m: m.get("event") == "message_deleted")
    assert (gone["channel_id"], gone["seq"], gone["deleted_by"]) == (channel_id, seq, carol["id"])
    (kept,) = _page(api, bob, channel_id)["items"]
    assert (kept["seq"], kept["text"], kept["deleted"]) == (seq, "", True), kept
    _problem(
        api.patch(message, token=alice["access_token"], json={"text": "back"}),
        409,
        "message-deleted",
    )
    # And the next message takes the next number
    assert _post(api, alice, channel_id, "anew")["seq"] == seq + 1


def test_a_read_marker_clears_unread_and_stops_at_the_newest_message(
    api: Api, team: dict[str, Any]
) -> None:
    # Given three messages of alice's in a channel bob joined before them
    alice, bob = team["alice"], team["bob"]
    channel_id = _new_channel(api, alice, team["org_id"], "reading")
    assert _ok(_join(api, bob, channel_id))["unread"] == 0
    for n in range(3):
        _post(api, alice, channel_id, f"news {n}")
    assert _channel(api, bob, channel_id)["unread"] == 3
    read = f"{CHAT}/{channel_id}/read"

    # When bob marks the newest one read
    marked = _ok(api.post(read, token=bob["access_token"], json={"seq": 3}))

    # Then nothing is unread, and an older marker does not move it back
    assert (marked["unread"], marked["last_seq"]) == (0, 3), marked
    assert _channel(api, bob, channel_id)["unread"] == 0
    _ok(api.post(read, token=bob["access_token"], json={"seq": 1}))
    assert _channel(api, bob, channel_id)["unread"] == 0

    # And a marker past the newest message is refused on its field
    beyond = _problem(
        api.post(read, token=bob["access_token"], json={"seq": 4}), 422, "validation-error"
    )
    assert [e["field"] for e in beyond["errors"]] == ["seq"], beyond
