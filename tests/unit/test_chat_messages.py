"""Chat messages under moto (kumo.chat.messages, ADR 29): gapless sequence numbers, also when
another send takes the number read; client ids that make a retry answer the first message;
text, images and whose images; catching up and history with their cursors; edits, deletions
that keep their number, read markers, and the per-user and per-connection limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from kumo.chat import access, channels, messages
from kumo.chat.errors import MessageDeleted
from kumo.chat.models import RateCounterModel
from kumo.chat.schemas import PostMessageRequest
from kumo.core import abuse_limits, clock, dynamo, rate_limit
from kumo.core.errors import BadRequest, Conflict, Forbidden, KumoError, NotFound, ValidationFailed
from kumo.core.rate_limit import Limit, RateLimited
from kumo.media.storage import find as find_media
from pynamodb.exceptions import PynamoDBException

from tests.support.factories import Fleet, new_channel, new_fleet
from tests.unit.test_media_service import pending, ready

pytestmark = pytest.mark.usefixtures("aws")

# The start of an hour: every window of every limit starts here.
T0 = 1_900_000_800.0


# --- fixtures and helpers -------------------------------------------------------------------


@dataclass(frozen=True)
class Room:
    """A public channel Alice created and Bob joined, in an org with an admin (user ids)."""

    org: Fleet
    channel_id: str
    alice: str
    bob: str
    admin: str

    @property
    def org_id(self) -> str:
        return self.org.org_id


@pytest.fixture
def room() -> Room:
    org = new_fleet("Acme", devices=0)
    alice, bob, admin = (org.member(role)["subject_id"] for role in ("member", "member", "admin"))
    channel_id = new_channel(org.org_id, alice)
    channels.join(user_id=bob, channel_id=channel_id, password=None)
    return Room(org, channel_id, alice, bob, admin)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock at the start of a window of every limit, so counts never straddle two."""
    monkeypatch.setattr(clock, "now", lambda: T0)


def post(
    room: Room,
    user_id: str,
    text: str = "hello",
    *,
    connection_id: str | None = None,
    **fields: Any,
) -> tuple[Any, bool]:
    request: Any = PostMessageRequest(text=text, **fields)
    return messages.post_message(
        user_id=user_id, channel_id=room.channel_id, request=request, connection_id=connection_id
    )


def send(room: Room, user_id: str, text: str = "hello", **fields: Any) -> Any:
    out, replayed = post(room, user_id, text, **fields)
    assert not replayed
    return out


def stored(room: Room) -> list[Any]:
    """Every message of the room, oldest first."""
    _, found, _ = messages.list_messages(
        user_id=room.alice, channel_id=room.channel_id, after_seq=0, limit=100, cursor=None
    )
    return found


def last_seq(room: Room) -> int:
    channel = access.find(room.channel_id)
    assert channel is not None
    return int(channel.seq)


def spent(limit: Limit, subject: str) -> int:
    """Units of `limit` spent by `subject` in the window that starts at T0."""
    counter = dynamo.get_or_none(
        RateCounterModel, rate_limit.counter_key(limit, subject), f"WINDOW#{int(T0)}"
    )
    return int(counter.hits) if counter is not None else 0


def pages(room: Room, user_id: str, after_seq: int | None, limit: int) -> list[list[int]]:
    """The sequence numbers of every page of a list, following its cursors to the end."""
    found, cursor = [], None
    while True:
        _, page, cursor = messages.list_messages(
            user_id=user_id,
            channel_id=room.channel_id,
            after_seq=after_seq,
            limit=limit,
            cursor=cursor,
        )
        found.append([int(m.seq) for m in page])
        if cursor is None:
            return found


def field_of(error: KumoError) -> str:
    return str(error.extra["errors"][0]["field"])


def fields_of(error: KumoError) -> list[str]:
    """The fields a 400 (`field`) or a 422 (`errors`) names."""
    named = [str(e["field"]) for e in error.extra.get("errors", [])]
    return [*named, str(error.extra["field"])] if "field" in error.extra else named


class SendsAfterReads:
    """Stands in for `kumo.chat.access.find`: after each of its first `times` reads of a
    channel, `rival()` stores a message, so the number the reader saw is taken by the time it
    writes. The rival's own reads pass straight through."""

    def __init__(self, times: int, rival: Callable[[], Any]) -> None:
        self._find = access.find
        self._left = times
        self._rival = rival
        self._inside = False
        self.rival_seqs: list[int] = []

    def __call__(self, channel_id: str) -> Any:
        found = self._find(channel_id)
        if self._left and not self._inside:
            self._left -= 1
            self._inside = True
            try:
                self.rival_seqs.append(int(self._rival().seq))
            finally:
                self._inside = False
        return found


# --- sequence numbers -----------------------------------------------------------------------


def test_messages_are_numbered_one_to_n_without_gaps(room: Room) -> None:
    # When Alice and Bob send five messages between them
    sent = [send(room, (room.alice, room.bob)[n % 2], f"message {n}") for n in range(5)]

    # Then they are numbered 1 to 5 in the order sent, and the channel's counter is at 5
    assert [m.seq for m in sent] == [1, 2, 3, 4, 5]
    assert [(int(m.seq), m.text) for m in stored(room)] == [
        (n + 1, f"message {n}") for n in range(5)
    ]
    assert last_seq(room) == 5
    assert len({m.id for m in sent}) == 5


def test_a_send_whose_number_was_taken_meanwhile_takes_the_next(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Bob's sends landing right after each of the first two reads of the channel
    rival = SendsAfterReads(2, lambda: send(room, room.bob, "rival"))
    monkeypatch.setattr(access, "find", rival)

    # When Alice sends
    mine = send(room, room.alice, "mine")

    # Then her message takes the number after Bob's: no gap, no number used twice
    assert rival.rival_seqs == [1, 2]
    assert mine.seq == 3
    assert [(int(m.seq), m.author_id) for m in stored(room)] == [
        (1, room.bob),
        (2, room.bob),
        (3, room.alice),
    ]
    assert last_seq(room) == 3


@pytest.mark.usefixtures("frozen_clock")
def test_a_channel_too_busy_to_take_a_send_answers_409_and_costs_nothing(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Bob's sends landing after every read of the channel
    rival = SendsAfterReads(1_000, lambda: send(room, room.bob, "rival"))
    monkeypatch.setattr(access, "find", rival)

    # When Alice sends
    with pytest.raises(Conflict) as busy:
        send(room, room.alice, "mine")

    # Then she is told to send again after the rounds ran out, nothing of hers is stored, the
    # numbers stay gapless, and her allowance is handed back
    assert busy.value.status == 409
    assert len(rival.rival_seqs) > messages._ROUNDS
    numbers = [(int(m.seq), m.author_id) for m in stored(room)]
    assert numbers == [(n, room.bob) for n in range(1, len(rival.rival_seqs) + 1)]
    assert spent(abuse_limits.MESSAGE_PER_USER, room.alice) == 0


# --- client ids -----------------------------------------------------------------------------


@pytest.mark.usefixtures("frozen_clock")
def test_a_retried_send_answers_the_message_stored_the_first_time(room: Room) -> None:
    # Given a message sent with a client id
    first, replayed = post(room, room.alice, "hello", client_id="send-1")
    assert not replayed

    # When the same send comes again (its answer was lost)
    again, replayed = post(room, room.alice, "hello", client_id="send-1")

    # Then it answers the same message, stores nothing and spends no allowance
    assert replayed
    assert again == first
    assert last_seq(room) == 1
    assert spent(abuse_limits.MESSAGE_PER_USER, room.alice) == 1


def test_client_ids_are_the_senders_own(room: Room) -> None:
    alices, _ = post(room, room.alice, "from alice", client_id="send-1")

    bobs, replayed = post(room, room.bob, "from bob", client_id="send-1")

    assert not replayed
    assert (bobs.seq, bobs.text, bobs.author_id) == (2, "from bob", room.bob)
    assert alices.seq == 1


@pytest.mark.usefixtures("frozen_clock")
def test_a_retry_racing_its_first_attempt_answers_what_the_first_stored(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the first attempt of a send storing its message just after the retry spent its
    # allowance (past the retry's own check for an earlier attempt)
    first: list[Any] = []
    real_spend_all = rate_limit.spend_all

    def spend_then_first_attempt_lands(model: Any, spends: Any) -> Any:
        units = real_spend_all(model, spends)
        if not first:
            first.append(None)
            first[0], _ = post(room, room.alice, "hello", client_id="send-1")
        return units

    monkeypatch.setattr(rate_limit, "spend_all", spend_then_first_attempt_lands)

    # When the retry stores
    retry, replayed = post(room, room.alice, "hello", client_id="send-1")

    # Then it answers the first attempt's message, stored once, and hands its unit back
    assert replayed
    assert retry == first[0]
    assert [int(m.seq) for m in stored(room)] == [1]
    assert spent(abuse_limits.MESSAGE_PER_USER, room.alice) == 1


# --- text and images ------------------------------------------------------------------------


def test_text_is_trimmed(room: Room) -> None:
    out = send(room, room.alice, " \u00a0\thello  world\n\u3000")

    assert out.text == "hello  world"
    assert stored(room)[0].text == "hello  world"


@pytest.mark.parametrize("text", ["", "   ", "\n\t\u00a0\u2003"])
def test_a_message_with_no_text_and_no_image_is_refused(room: Room, text: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        send(room, room.alice, text)

    assert refused.value.status == 422
    assert field_of(refused.value) == "text"
    assert last_seq(room) == 0


@pytest.mark.usefixtures("media_bucket")
def test_a_message_may_be_an_image_alone(room: Room) -> None:
    # Given a ready attachment of the org
    media_id = ready(room.org, purpose="attachment")

    # When Bob sends it without text
    out = send(room, room.bob, "", media_id=media_id)

    # Then the message carries the image with its links, and the channel holds the file
    assert (out.seq, out.text) == (1, "")
    assert out.image is not None
    assert (out.image.media_id, out.image.content_type) == (media_id, "image/png")
    assert (out.image.width, out.image.height) == (32, 24)
    assert "X-Amz-Signature=" in out.image.original
    assert stored(room)[0].media_id == media_id
    media = find_media(media_id)
    assert media is not None and media.holder == messages.holder(room.channel_id)


@pytest.mark.usefixtures("media_bucket", "frozen_clock")
def test_a_file_of_another_org_is_refused_on_media_id(room: Room) -> None:
    # Given a ready attachment of another org
    other = new_fleet("Other", devices=0)
    theirs = ready(other, purpose="attachment")

    # When Bob attaches it
    with pytest.raises(ValidationFailed) as refused:
        send(room, room.bob, "look", media_id=theirs)

    # Then it is a 422 on media_id, as for a file that does not exist: nothing stored, the
    # file not claimed and the allowance handed back
    assert refused.value.status == 422
    assert field_of(refused.value) == "media_id"
    assert last_seq(room) == 0
    media = find_media(theirs)
    assert media is not None and media.holder is None
    assert spent(abuse_limits.MESSAGE_PER_USER, room.bob) == 0


@pytest.mark.usefixtures("media_bucket")
def test_a_file_not_yet_ready_or_of_another_purpose_is_refused(room: Room) -> None:
    waiting = pending(room.org, purpose="attachment")
    avatar = ready(room.org, purpose="avatar")

    for media_id in (waiting, avatar):
        with pytest.raises(ValidationFailed) as refused:
            send(room, room.bob, "look", media_id=media_id)
        assert field_of(refused.value) == "media_id"
    assert last_seq(room) == 0


@pytest.mark.usefixtures("media_bucket")
def test_a_file_attached_in_another_channel_is_refused(room: Room) -> None:
    media_id = ready(room.org, purpose="attachment")
    send(room, room.bob, "here", media_id=media_id)
    elsewhere = new_channel(room.org_id, room.bob)

    with pytest.raises(ValidationFailed) as refused:
        messages.post_message(
            user_id=room.bob,
            channel_id=elsewhere,
            request=PostMessageRequest(text="again", media_id=media_id),
        )

    assert field_of(refused.value) == "media_id"


# --- reading --------------------------------------------------------------------------------


def test_catching_up_after_a_number_answers_what_came_after_oldest_first(room: Room) -> None:
    for n in range(5):
        send(room, room.alice, f"message {n}")

    assert pages(room, room.bob, after_seq=2, limit=2) == [[3, 4], [5]]
    assert pages(room, room.bob, after_seq=5, limit=2) == [[]]


def test_history_is_newest_first_page_by_page(room: Room) -> None:
    for n in range(5):
        send(room, room.alice, f"message {n}")

    assert pages(room, room.bob, after_seq=None, limit=2) == [[5, 4], [3, 2], [1]]


def test_a_list_answers_the_channels_org(room: Room) -> None:
    send(room, room.alice)

    org_id, _, _ = messages.list_messages(
        user_id=room.bob, channel_id=room.channel_id, after_seq=None, limit=None, cursor=None
    )

    assert org_id == room.org_id


def test_a_cursor_of_another_channel_is_refused(room: Room) -> None:
    # Given a cursor of another channel's history
    elsewhere = new_channel(room.org_id, room.alice)
    for n in range(3):
        messages.post_message(
            user_id=room.alice, channel_id=elsewhere, request=PostMessageRequest(text=f"m{n}")
        )
    _, _, cursor = messages.list_messages(
        user_id=room.alice, channel_id=elsewhere, after_seq=None, limit=1, cursor=None
    )
    assert cursor is not None

    # Then this channel's list does not page on with it
    with pytest.raises(BadRequest) as refused:
        messages.list_messages(
            user_id=room.alice, channel_id=room.channel_id, after_seq=None, limit=1, cursor=cursor
        )
    assert refused.value.extra["field"] == "cursor"


@pytest.mark.parametrize("after_seq", [None, 0])
def test_a_cursor_of_the_channels_member_list_is_refused(room: Room, after_seq: int | None) -> None:
    # Given messages, and a cursor of the same channel's member list (the same partition)
    for n in range(3):
        send(room, room.alice, f"message {n}")
    _, members_cursor = channels.members(
        user_id=room.alice, channel_id=room.channel_id, limit=1, cursor=None
    )
    assert members_cursor is not None

    # When it is handed to the message list, then it is refused as a cursor of another list
    # (on DynamoDB itself a start key outside the key condition is a ValidationException: a 500)
    with pytest.raises((BadRequest, ValidationFailed)) as refused:
        _, found, _ = messages.list_messages(
            user_id=room.alice,
            channel_id=room.channel_id,
            after_seq=after_seq,
            limit=10,
            cursor=members_cursor,
        )
        pytest.fail(
            "kumo.chat.messages.list_messages took a cursor of the member list and answered "
            f"seqs {[int(m.seq) for m in found]}"
        )
    assert "cursor" in fields_of(refused.value)


def test_only_members_read_a_channel(room: Room) -> None:
    outsider = room.org.member("member")["subject_id"]
    stranger = new_fleet("Other", devices=0).owner_id

    with pytest.raises(Forbidden):
        messages.list_messages(
            user_id=outsider, channel_id=room.channel_id, after_seq=None, limit=None, cursor=None
        )
    with pytest.raises(NotFound):
        messages.list_messages(
            user_id=stranger, channel_id=room.channel_id, after_seq=None, limit=None, cursor=None
        )


def test_only_members_send(room: Room) -> None:
    outsider = room.org.member("member")["subject_id"]

    with pytest.raises(Forbidden):
        send(room, outsider, "let me in")

    assert last_seq(room) == 0


# --- editing --------------------------------------------------------------------------------


def test_the_author_edits_a_message(room: Room) -> None:
    sent = send(room, room.alice, "helo")

    edited = messages.edit_message(
        user_id=room.alice, channel_id=room.channel_id, seq=sent.seq, text="  hello \n"
    )

    assert (edited.seq, edited.id, edited.text) == (sent.seq, sent.id, "hello")
    assert edited.edited_at is not None
    [message] = stored(room)
    assert (message.text, message.edited_at) == ("hello", edited.edited_at)


@pytest.mark.parametrize("who", ["bob", "admin"])
def test_only_the_author_edits_a_message(room: Room, who: str) -> None:
    sent = send(room, room.alice, "mine")

    with pytest.raises(Forbidden):
        messages.edit_message(
            user_id=getattr(room, who), channel_id=room.channel_id, seq=sent.seq, text="theirs"
        )

    assert stored(room)[0].text == "mine"


def test_a_deleted_message_is_not_edited(room: Room) -> None:
    sent = send(room, room.alice, "oops")
    messages.delete_message(user_id=room.alice, channel_id=room.channel_id, seq=sent.seq)

    with pytest.raises(MessageDeleted) as refused:
        messages.edit_message(
            user_id=room.alice, channel_id=room.channel_id, seq=sent.seq, text="revived"
        )

    assert (refused.value.status, refused.value.slug) == (409, "message-deleted")
    assert stored(room)[0].text == ""


def test_an_edit_to_nothing_is_refused(room: Room) -> None:
    sent = send(room, room.alice, "hello")

    with pytest.raises(ValidationFailed) as refused:
        messages.edit_message(
            user_id=room.alice, channel_id=room.channel_id, seq=sent.seq, text=" "
        )

    assert field_of(refused.value) == "text"
    assert stored(room)[0].text == "hello"


def test_editing_a_number_not_sent_is_not_found(room: Room) -> None:
    with pytest.raises(NotFound):
        messages.edit_message(user_id=room.alice, channel_id=room.channel_id, seq=7, text="x")


def test_an_edit_racing_a_deletion_is_told_the_message_is_deleted(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Alice's message, deleted just after her edit read it
    sent = send(room, room.alice, "helo")
    real_find_message = messages.find_message

    def read_then_deleted(channel_id: str, seq: int) -> Any:
        found = real_find_message(channel_id, seq)
        monkeypatch.setattr(messages, "find_message", real_find_message)
        messages.delete_message(user_id=room.alice, channel_id=channel_id, seq=seq)
        return found

    monkeypatch.setattr(messages, "find_message", read_then_deleted)

    # When the edit writes
    with pytest.raises((MessageDeleted, PynamoDBException)) as raised:
        messages.edit_message(
            user_id=room.alice, channel_id=room.channel_id, seq=sent.seq, text="hello"
        )

    # Then it is the 409 of a deleted message (a problem, not an unmapped error: ADR 23), and
    # the tombstone stays empty
    answer = raised.value
    assert isinstance(answer, MessageDeleted), (
        "kumo.chat.messages.edit_message let its failed condition through as "
        f"{type(answer).__module__}.{type(answer).__name__} (a 500), not MessageDeleted"
    )
    assert stored(room)[0].text == ""


# --- deleting -------------------------------------------------------------------------------


def test_a_deleted_message_keeps_its_number_without_content(room: Room) -> None:
    # Given three messages
    for n in range(3):
        send(room, room.alice, f"message {n}")

    # When Alice deletes the second
    messages.delete_message(user_id=room.alice, channel_id=room.channel_id, seq=2)

    # Then it stays in its place as a tombstone, and the next message still takes 4
    found = stored(room)
    assert [(int(m.seq), m.text, bool(m.deleted)) for m in found] == [
        (1, "message 0", False),
        (2, "", True),
        (3, "message 2", False),
    ]
    assert found[1].deleted_by == room.alice
    assert send(room, room.bob).seq == 4


@pytest.mark.usefixtures("media_bucket")
def test_a_deleted_image_message_keeps_no_image(room: Room) -> None:
    media_id = ready(room.org, purpose="attachment")
    sent = send(room, room.bob, "look", media_id=media_id)

    messages.delete_message(user_id=room.bob, channel_id=room.channel_id, seq=sent.seq)

    [message] = stored(room)
    assert message.media_id is None
    out = messages.message_out(message, room.org_id)
    assert (out.deleted, out.text, out.image) == (True, "", None)


def test_an_org_admin_deletes_someone_elses_message(room: Room) -> None:
    channels.join(user_id=room.admin, channel_id=room.channel_id, password=None)
    sent = send(room, room.bob, "spam")

    messages.delete_message(user_id=room.admin, channel_id=room.channel_id, seq=sent.seq)

    [message] = stored(room)
    assert (bool(message.deleted), message.deleted_by) == (True, room.admin)


def test_a_member_does_not_delete_someone_elses_message(room: Room) -> None:
    sent = send(room, room.alice, "mine")

    with pytest.raises(Forbidden):
        messages.delete_message(user_id=room.bob, channel_id=room.channel_id, seq=sent.seq)

    [message] = stored(room)
    assert (bool(message.deleted), message.text) == (False, "mine")


def test_deleting_a_message_twice_is_a_no_op(room: Room) -> None:
    channels.join(user_id=room.admin, channel_id=room.channel_id, password=None)
    sent = send(room, room.alice, "oops")
    messages.delete_message(user_id=room.alice, channel_id=room.channel_id, seq=sent.seq)

    messages.delete_message(user_id=room.admin, channel_id=room.channel_id, seq=sent.seq)

    [message] = stored(room)
    assert (bool(message.deleted), message.deleted_by) == (True, room.alice)


# --- read markers ---------------------------------------------------------------------------


def test_the_read_marker_moves_forward_only(room: Room) -> None:
    # Given three messages Bob has not read
    for n in range(3):
        send(room, room.alice, f"message {n}")

    # When he marks 2 read, then 1, then 3
    after_two = messages.mark_read(user_id=room.bob, channel_id=room.channel_id, seq=2)
    after_one = messages.mark_read(user_id=room.bob, channel_id=room.channel_id, seq=1)

    # Then the marker stays at 2 until he reads further
    assert int(after_two.last_read_seq) == 2
    assert int(after_one.last_read_seq) == 2
    membership = access.membership(room.channel_id, room.bob)
    assert membership is not None and int(membership.last_read_seq) == 2
    channel = access.find(room.channel_id)
    assert channel is not None and channels.channel_out(channel, membership).unread == 1
    assert (
        int(messages.mark_read(user_id=room.bob, channel_id=room.channel_id, seq=3).last_read_seq)
        == 3
    )


def test_ones_own_messages_are_not_unread(room: Room) -> None:
    # When Alice sends two messages
    send(room, room.alice, "one")
    send(room, room.alice, "two")

    # Then her read marker follows them, while Bob has both to read
    channel = access.find(room.channel_id)
    alices = access.membership(room.channel_id, room.alice)
    bobs = access.membership(room.channel_id, room.bob)
    assert channel is not None and alices is not None and bobs is not None
    assert int(alices.last_read_seq) == 2
    assert channels.channel_out(channel, alices).unread == 0
    assert channels.channel_out(channel, bobs).unread == 2


def test_marking_past_the_newest_message_is_refused(room: Room) -> None:
    send(room, room.alice)

    with pytest.raises(ValidationFailed) as refused:
        messages.mark_read(user_id=room.bob, channel_id=room.channel_id, seq=2)

    assert refused.value.status == 422
    assert field_of(refused.value) == "seq"
    membership = access.membership(room.channel_id, room.bob)
    assert membership is not None and int(membership.last_read_seq) == 0


# --- limits ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("frozen_clock")
def test_a_user_past_the_message_limit_gets_429_with_retry_after(room: Room) -> None:
    # Given Alice as many messages as the limit allows in a minute
    limit = abuse_limits.MESSAGE_PER_USER
    for n in range(limit.limit):
        send(room, room.alice, f"message {n}")

    # When she sends one more
    with pytest.raises(RateLimited) as limited:
        send(room, room.alice, "one too many")

    # Then it is a 429 saying when the window ends, and it was not stored; Bob still sends
    error = limited.value
    assert error.status == 429
    assert error.extra["retry_after"] == limit.window_seconds  # the window started at T0
    assert error.headers == {"Retry-After": str(limit.window_seconds)}
    assert error.extra["limit"] == limit.name
    assert last_seq(room) == limit.limit
    assert send(room, room.bob).seq == limit.limit + 1


@pytest.mark.usefixtures("frozen_clock")
def test_a_connection_past_its_limit_gets_429_and_the_users_unit_back(room: Room) -> None:
    # Given Alice's connection as many messages as its limit allows
    limit = abuse_limits.MESSAGE_PER_CONNECTION
    for n in range(limit.limit):
        post(room, room.alice, f"message {n}", connection_id="conn-1")

    # When she sends one more on it
    with pytest.raises(RateLimited) as limited:
        post(room, room.alice, "one too many", connection_id="conn-1")

    # Then the connection's limit refuses it, and the user's unit spent first is handed back
    assert limited.value.extra["limit"] == limit.name
    assert spent(abuse_limits.MESSAGE_PER_USER, room.alice) == limit.limit
    assert last_seq(room) == limit.limit


# --- mentions -------------------------------------------------------------------------------


@pytest.fixture
def told(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """What chat tells users on their own channels."""
    from kumo.chat import live

    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(live, "tell_user", lambda user, message: calls.append((user, message)))
    return calls


def test_a_mentioned_member_is_told_on_their_own_channel(
    room: Room, told: list[tuple[str, dict[str, Any]]]
) -> None:
    # When Alice names Bob, and herself, twice
    out = send(room, room.alice, "see this", mentions=[room.bob, room.bob, room.alice])

    # Then Bob alone is told once, of that message, and the message lists him
    assert out.mentions == [room.bob]
    assert told == [
        (
            room.bob,
            {
                "event": "mention",
                "channel_id": room.channel_id,
                "org_id": room.org_id,
                "seq": out.seq,
                "author_id": room.alice,
            },
        )
    ]


def test_mentioning_someone_outside_the_channel_is_refused_and_stores_nothing(
    room: Room, told: list[tuple[str, dict[str, Any]]]
) -> None:
    outsider = room.admin  # in the org, not in the channel

    with pytest.raises(ValidationFailed) as refused:
        send(room, room.alice, "hello", mentions=[outsider])

    assert field_of(refused.value) == "mentions"
    assert (last_seq(room), told) == (0, [])
