"""Chat on the WebSocket API under moto: who may subscribe to a chat channel (members only, the
404 of a missing channel otherwise) and to a user's own channel (its user only), dropping a
user's connections from a channel they left, and what chat pushes to whom
(kumo.realtime.service, connections, fanout; kumo.chat.live)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from kumo.chat import access, channels, messages
from kumo.chat.schemas import PostMessageRequest
from kumo.core.errors import NotFound, ValidationFailed
from kumo.core.principal import Principal
from kumo.orgs import service as orgs
from kumo.realtime import connections, fanout, service, shards
from kumo.realtime.models import (
    META,
    SUB_PREFIX,
    ConnectionModel,
    chat_channel,
    connection_key,
    user_channel,
)
from kumo.realtime.schemas import SubscriptionMessage

from tests.support.aws import posted_to
from tests.support.factories import (
    Fleet,
    new_channel,
    new_fleet,
    principal_for,
    websocket_connection,
    websocket_subscribe,
)

pytestmark = pytest.mark.usefixtures("aws", "fresh_management_client")

PROBLEM = "urn:kumo:problem:"


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

    @property
    def stream(self) -> str:
        """The channel's name on the live stream."""
        return chat_channel(self.org_id, self.channel_id)


@pytest.fixture
def room() -> Room:
    org = new_fleet("Acme", devices=0)
    alice, bob, carol = (org.member("member")["subject_id"] for _ in range(3))
    channel_id = new_channel(org.org_id, alice)
    channels.join(user_id=bob, channel_id=channel_id, password=None)
    return Room(org, channel_id, alice, bob, carol, new_fleet("Other", devices=0).owner_id)


def on_chat(user_id: str, channel_id: str, connection_id: str | None = None) -> str:
    """A connection of the user (a new one unless given) subscribed to a chat channel."""
    connection_id = connection_id or websocket_connection(user_id)
    websocket_subscribe(connection_id, user_id, "chat", channel_id=channel_id)
    return connection_id


def on_own_channel(user_id: str, connection_id: str | None = None) -> str:
    connection_id = connection_id or websocket_connection(user_id)
    websocket_subscribe(connection_id, user_id, "user")
    return connection_id


def subscriptions(connection_id: str) -> int:
    return int(ConnectionModel.get(connection_key(connection_id), META).subscriptions)


def subscribed_to(connection_id: str) -> list[str]:
    """The channels a connection holds subscriptions to (its SUB# items)."""
    items = ConnectionModel.query(
        connection_key(connection_id), ConnectionModel.sk.startswith(SUB_PREFIX)
    )
    return sorted(item.sk.removeprefix(SUB_PREFIX) for item in items)


def events(connection_id: str, event: str) -> list[dict[str, Any]]:
    return [m for m in posted_to(connection_id) if m["event"] == event]


def send(room: Room, user_id: str, text: str) -> Any:
    out, _ = messages.post_message(
        user_id=user_id, channel_id=room.channel_id, request=PostMessageRequest(text=text)
    )
    return out


# --- subscribing to a chat channel ----------------------------------------------------------


def test_a_member_subscribes_to_a_chat_channel(room: Room) -> None:
    # Given Bob's connection
    connection_id = websocket_connection(room.bob)

    # When he subscribes to the channel he joined
    ack = websocket_subscribe(
        connection_id, room.bob, "chat", channel_id=room.channel_id, id="sub-1"
    )

    # Then the ack names the channel and its org, and the connection is on its stream
    assert ack == {
        "event": "subscribed",
        "channel": "chat",
        "channel_id": room.channel_id,
        "org_id": room.org_id,
        "id": "sub-1",
    }
    assert fanout.subscribers(room.stream) == [connection_id]
    assert subscriptions(connection_id) == 1
    assert subscribed_to(connection_id) == [room.stream]


@pytest.mark.parametrize("who", ["carol", "stranger"])
def test_only_members_of_the_channel_subscribe_to_it(room: Room, who: str) -> None:
    # Given a connection of Carol (in the org, not in the channel) or of a stranger
    user_id = getattr(room, who)
    connection_id = websocket_connection(user_id)

    # When they subscribe to the channel
    with pytest.raises(NotFound) as refused:
        websocket_subscribe(connection_id, user_id, "chat", channel_id=room.channel_id)

    # Then it is the 404 of a channel that does not exist, and nothing is stored
    assert refused.value.detail == access.NO_CHANNEL
    assert fanout.subscribers(room.stream) == []
    assert subscriptions(connection_id) == 0
    assert subscribed_to(connection_id) == []


def test_an_invitee_subscribes_only_once_joined(room: Room) -> None:
    # Given a private channel to which Carol is invited
    private = new_channel(room.org_id, room.alice, visibility="private")
    channels.invite(user_id=room.alice, channel_id=private, invitee_id=room.carol)
    connection_id = websocket_connection(room.carol)

    # Then the invitation is not enough to subscribe; joining is
    with pytest.raises(NotFound):
        websocket_subscribe(connection_id, room.carol, "chat", channel_id=private)
    channels.join(user_id=room.carol, channel_id=private, password=None)
    websocket_subscribe(connection_id, room.carol, "chat", channel_id=private)
    assert fanout.subscribers(chat_channel(room.org_id, private)) == [connection_id]


def test_a_member_who_left_the_org_no_longer_subscribes(room: Room) -> None:
    # Given Bob, still in the channel, removed from the org
    orgs.remove_member(org_id=room.org_id, actor_id=room.org.owner_id, user_id=room.bob)
    connection_id = websocket_connection(room.bob)

    with pytest.raises(NotFound):
        websocket_subscribe(connection_id, room.bob, "chat", channel_id=room.channel_id)

    assert fanout.subscribers(room.stream) == []


def test_a_channel_that_does_not_exist_is_not_found(room: Room) -> None:
    connection_id = websocket_connection(room.bob)

    with pytest.raises(NotFound):
        websocket_subscribe(connection_id, room.bob, "chat", channel_id="0" * 26)


def test_the_subscribe_function_checks_chat_channels_with_chat(
    room: Room, ws: Callable[..., dict[str, Any]]
) -> None:
    # Given connections of Bob (a member) and Carol (not one)
    bobs, carols = websocket_connection(room.bob), websocket_connection(room.carol)
    body = {"action": "subscribe", "channel": "chat", "channel_id": room.channel_id, "id": "s"}

    # When both subscribe through the ws_subscribe function
    ws("ws_subscribe", bobs, principal_for(room.bob), body)
    ws("ws_subscribe", carols, principal_for(room.carol), body)

    # Then Bob is subscribed and Carol answered the 404
    assert posted_to(bobs) == [
        {
            "event": "subscribed",
            "channel": "chat",
            "channel_id": room.channel_id,
            "org_id": room.org_id,
            "id": "s",
        }
    ]
    [reply] = posted_to(carols)
    assert (reply["event"], reply["id"]) == ("error", "s")
    assert reply["problem"]["status"] == 404
    assert reply["problem"]["type"] == f"{PROBLEM}not-found"
    assert fanout.subscribers(room.stream) == [bobs]


def test_without_the_chat_check_no_chat_channel_is_subscribed(room: Room) -> None:
    # A caller that passes no chat check (a function other than ws_subscribe) refuses them
    connection_id = websocket_connection(room.bob)
    message: Any = SubscriptionMessage(
        action="subscribe", channel="chat", channel_id=room.channel_id
    )

    with pytest.raises(NotFound):
        service.subscribe(
            connection_id,
            Principal.from_context(principal_for(room.bob)),
            message,
            device_org=lambda user_id, device_id: "",
        )

    assert fanout.subscribers(room.stream) == []


# --- the user's own channel -----------------------------------------------------------------


def test_the_user_channel_is_the_callers_own(room: Room) -> None:
    connection_id = websocket_connection(room.bob)

    ack = websocket_subscribe(connection_id, room.bob, "user", id="me")

    assert ack == {"event": "subscribed", "channel": "user", "user_id": room.bob, "id": "me"}
    assert fanout.subscribers(user_channel(room.bob)) == [connection_id]
    assert subscriptions(connection_id) == 1


def test_the_user_channel_cannot_name_another_user(room: Room) -> None:
    body = json.dumps({"action": "subscribe", "channel": "user", "user_id": room.alice})

    with pytest.raises(ValidationFailed) as refused:
        service.parse(body, SubscriptionMessage)

    assert [e["field"] for e in refused.value.extra["errors"]] == ["user_id"]


def test_a_user_channel_subscription_hears_only_its_user(room: Room) -> None:
    # Given Bob listening on his own channel
    bobs = on_own_channel(room.bob)

    # When something is told to Alice
    assert fanout.publish_to_user(room.alice, {"event": "channel_invitation"}) == 0

    # Then Bob hears nothing
    assert posted_to(bobs) == []


# --- dropping a user from a channel's stream ------------------------------------------------


def test_dropping_a_chat_subscriber_removes_exactly_that_users_connections(room: Room) -> None:
    # Given Bob on the channel from two connections, one of them also on another channel and
    # on his own, and Alice on the channel
    other = new_channel(room.org_id, room.bob)
    first = on_chat(room.bob, room.channel_id)
    on_chat(room.bob, other, first)
    on_own_channel(room.bob, first)
    second = on_chat(room.bob, room.channel_id)
    alices = on_chat(room.alice, room.channel_id)

    # When Bob is dropped from the channel's stream
    dropped = connections.drop_chat_subscriber(room.org_id, room.channel_id, room.bob)

    # Then both his connections are off it, with their counts down, and nothing else changed
    assert dropped == 2
    assert fanout.subscribers(room.stream) == [alices]
    assert subscribed_to(first) == sorted(
        [chat_channel(room.org_id, other), user_channel(room.bob)]
    )
    assert (subscriptions(first), subscriptions(second)) == (2, 0)
    assert subscribed_to(second) == []
    assert fanout.subscribers(chat_channel(room.org_id, other)) == [first]
    assert fanout.subscribers(user_channel(room.bob)) == [first]
    assert (subscriptions(alices), subscribed_to(alices)) == (1, [room.stream])


def test_dropping_a_subscriber_whose_connection_closed_meanwhile(room: Room) -> None:
    # Given Bob on the channel, his connection record gone (closed without its cleanup)
    connection_id = on_chat(room.bob, room.channel_id)
    ConnectionModel(connection_key(connection_id), META).delete()

    # Then dropping him still takes the connection off the stream, without an error
    assert connections.drop_chat_subscriber(room.org_id, room.channel_id, room.bob) == 1
    assert fanout.subscribers(room.stream) == []
    assert ConnectionModel.count(connection_key(connection_id)) == 0


def test_dropping_a_user_not_on_the_stream_changes_nothing(room: Room) -> None:
    alices = on_chat(room.alice, room.channel_id)

    assert connections.drop_chat_subscriber(room.org_id, room.channel_id, room.bob) == 0

    assert fanout.subscribers(room.stream) == [alices]
    assert subscriptions(alices) == 1


def test_leaving_a_channel_ends_its_stream_for_that_user(room: Room) -> None:
    # Given Alice and Bob on the channel's stream
    alices = on_chat(room.alice, room.channel_id)
    bobs = on_chat(room.bob, room.channel_id)

    # When Bob leaves, and Alice sends
    channels.leave(user_id=room.bob, channel_id=room.channel_id)
    send(room, room.alice, "still there?")

    # Then the message reaches Alice only
    assert fanout.subscribers(room.stream) == [alices]
    assert subscriptions(bobs) == 0
    assert len(events(alices, "message")) == 1
    assert events(bobs, "message") == []


def test_a_removed_member_stops_hearing_the_channel(room: Room) -> None:
    bobs = on_chat(room.bob, room.channel_id)

    channels.remove_member(user_id=room.alice, channel_id=room.channel_id, member_id=room.bob)
    send(room, room.alice, "bob is gone")

    assert fanout.subscribers(room.stream) == []
    assert events(bobs, "message") == []
    assert subscribed_to(bobs) == []


def test_deleting_a_channel_ends_its_stream(room: Room) -> None:
    alices, bobs = on_chat(room.alice, room.channel_id), on_chat(room.bob, room.channel_id)

    channels.delete_channel(user_id=room.alice, channel_id=room.channel_id)

    assert fanout.subscribers(room.stream) == []
    assert (subscriptions(alices), subscriptions(bobs)) == (0, 0)


# --- pushes ---------------------------------------------------------------------------------


def test_publish_chat_posts_to_the_channels_subscribers_only(room: Room) -> None:
    # Given Alice on the channel, Bob on another channel of the org and on his own channel
    other = new_channel(room.org_id, room.bob)
    alices = on_chat(room.alice, room.channel_id)
    bobs = on_chat(room.bob, other)
    on_own_channel(room.bob, bobs)
    pushed = [{"event": "message", "n": 1}, {"event": "message", "n": 2}]

    # When two messages are pushed to the channel
    delivered = shards.publish_chat(room.org_id, room.channel_id, pushed)

    # Then only Alice's connection gets them, in order
    assert delivered == 2
    assert posted_to(alices) == pushed
    assert posted_to(bobs) == []


def test_publish_chat_reaches_no_one_of_the_same_channel_id_in_another_org(room: Room) -> None:
    alices = on_chat(room.alice, room.channel_id)

    assert shards.publish_chat(room.stranger, room.channel_id, [{"event": "message"}]) == 0

    assert posted_to(alices) == []


def test_publish_to_user_posts_to_every_connection_of_that_user(room: Room) -> None:
    first, second = on_own_channel(room.bob), on_own_channel(room.bob)
    alices = on_own_channel(room.alice)
    told = {"event": "channel_removed", "channel": {"id": room.channel_id}}

    assert fanout.publish_to_user(room.bob, told) == 2

    assert posted_to(first) == posted_to(second) == [told]
    assert posted_to(alices) == []


def test_a_sent_message_reaches_every_subscriber_of_its_channel(room: Room) -> None:
    # Given Alice and Bob on the channel's stream, and Carol on her own channel
    alices, bobs = on_chat(room.alice, room.channel_id), on_chat(room.bob, room.channel_id)
    carols = on_own_channel(room.carol)

    # When Alice sends
    out = send(room, room.alice, "hello")

    # Then both get the stored message, the sender too, and Carol nothing
    expected = [{"event": "message", "message": out.model_dump()}]
    assert events(alices, "message") == events(bobs, "message") == expected
    assert posted_to(carols) == []


def test_edits_and_deletions_reach_the_channels_subscribers(room: Room) -> None:
    bobs = on_chat(room.bob, room.channel_id)
    sent = send(room, room.alice, "helo")

    edited = messages.edit_message(
        user_id=room.alice, channel_id=room.channel_id, seq=sent.seq, text="hello"
    )
    messages.delete_message(user_id=room.alice, channel_id=room.channel_id, seq=sent.seq)

    assert events(bobs, "message_edited") == [
        {"event": "message_edited", "message": edited.model_dump()}
    ]
    assert events(bobs, "message_deleted") == [
        {
            "event": "message_deleted",
            "channel_id": room.channel_id,
            "seq": sent.seq,
            "deleted_by": room.alice,
        }
    ]
