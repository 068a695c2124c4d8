"""Chat channels under moto (kumo.chat.channels and kumo.chat.access, ADR 29): names unique in
an org, passwords kept as hashes, who sees which channel, the joined and public lists, changes
by the creator or an org admin, joining (passwords and their limit, invitations), leaving,
removing, and deleting a channel with everything in its partition."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from kumo.chat import access, channels, messages
from kumo.chat.errors import ChannelNameTaken, WrongChannelPassword
from kumo.chat.models import (
    AnyItem,
    InvitationModel,
    MembershipModel,
    NameModel,
    channel_key,
    invited_key,
    name_key,
    name_sort_key,
    user_key,
)
from kumo.chat.schemas import CreateChannelRequest, PostMessageRequest, UpdateChannelRequest
from kumo.core import abuse_limits, clock
from kumo.core.config import get_settings
from kumo.core.errors import BadRequest, Forbidden, NotFound, ValidationFailed
from kumo.core.ids import new_id
from kumo.core.rate_limit import RateLimited
from kumo.identity import passwords
from pydantic import ValidationError

from tests.support.aws import posted_to
from tests.support.factories import (
    Fleet,
    new_channel,
    new_fleet,
    websocket_connection,
    websocket_subscribe,
)

pytestmark = pytest.mark.usefixtures("aws")

SECRET = "open sesame 7"
# The start of an hour: every window of every limit starts here.
T0 = 1_900_000_800.0


# --- fixtures and helpers -------------------------------------------------------------------


@dataclass(frozen=True)
class Org:
    """An org with its owner, an admin and two plain members (user ids)."""

    fleet: Fleet
    admin: str
    alice: str
    bob: str

    @property
    def org_id(self) -> str:
        return self.fleet.org_id

    @property
    def owner(self) -> str:
        return self.fleet.owner_id

    def member(self, role: str = "member") -> str:
        return self.fleet.member(role)["subject_id"]


@pytest.fixture
def org() -> Org:
    fleet = new_fleet("Acme", devices=0)
    return Org(
        fleet,
        admin=fleet.member("admin")["subject_id"],
        alice=fleet.member("member")["subject_id"],
        bob=fleet.member("member")["subject_id"],
    )


@pytest.fixture
def stranger() -> str:
    """The owner of another org, in no way part of `org`."""
    return new_fleet("Other", devices=0).owner_id


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock at the start of a window of every limit, so counts never straddle two."""
    monkeypatch.setattr(clock, "now", lambda: T0)


def create(user_id: str, org_id: str, name: str, **fields: Any) -> Any:
    request: Any = CreateChannelRequest(org_id=org_id, name=name, **fields)
    return channels.create_channel(user_id=user_id, request=request)


def update(user_id: str, channel_id: str, **fields: Any) -> Any:
    request = UpdateChannelRequest.model_validate(fields)
    return channels.update_channel(user_id=user_id, channel_id=channel_id, request=request)


def join(user_id: str, channel_id: str, password: str | None = None) -> Any:
    return channels.join(user_id=user_id, channel_id=channel_id, password=password)


def name_holder(org_id: str, name: str) -> str | None:
    """The channel that holds `name` in the org, if any."""
    try:
        return str(NameModel.get(name_key(org_id), name_sort_key(name)).channel_id)
    except NameModel.DoesNotExist:
        return None


def listing(user_id: str, org_id: str, scope: Any, limit: int) -> list[list[Any]]:
    """Every page of a list, following its cursors to the end."""
    pages, cursor = [], None
    while True:
        page, cursor = channels.list_channels(
            user_id=user_id, org_id=org_id, scope=scope, limit=limit, cursor=cursor
        )
        pages.append(page)
        if cursor is None:
            return pages


def told(connection_id: str, event: str) -> list[dict[str, Any]]:
    return [m for m in posted_to(connection_id) if m["event"] == event]


def listening(user_id: str) -> str:
    """A connection of the user subscribed to their own channel; answers its id."""
    connection_id = websocket_connection(user_id)
    websocket_subscribe(connection_id, user_id, "user")
    return connection_id


# --- create ---------------------------------------------------------------------------------


def test_create_channel_makes_its_creator_the_first_member(org: Org) -> None:
    # When a member creates a public channel
    channel = create(org.alice, org.org_id, "general", description="Everything else")

    # Then it is stored with its creator as its only member and nothing sent yet
    found = access.find(channel.channel_id)
    assert found is not None
    assert (found.name, found.description, found.visibility) == (
        "general",
        "Everything else",
        "public",
    )
    assert (found.created_by, int(found.member_count), int(found.seq)) == (org.alice, 1, 0)
    membership = access.membership(channel.channel_id, org.alice)
    assert membership is not None and int(membership.last_read_seq) == 0
    out = channels.channel_out(found, membership)
    assert (out.joined, out.unread, out.has_password) == (True, 0, False)
    assert name_holder(org.org_id, "general") == channel.channel_id


def test_create_channel_refuses_a_name_taken_in_the_org(org: Org) -> None:
    # Given a channel named "general"
    first = create(org.alice, org.org_id, "general")

    # When another member asks for the same name in the same org
    with pytest.raises(ChannelNameTaken) as refused:
        create(org.bob, org.org_id, "general")

    # Then it is a 409 naming the problem, and the name still belongs to the first channel
    assert (refused.value.status, refused.value.slug) == (409, "channel-name-taken")
    assert name_holder(org.org_id, "general") == first.channel_id
    public, _ = channels.list_channels(
        user_id=org.bob, org_id=org.org_id, scope="public", limit=None, cursor=None
    )
    assert [channel.channel_id for channel, _ in public] == [first.channel_id]


def test_another_org_may_use_a_name_taken_in_this_one(org: Org) -> None:
    create(org.alice, org.org_id, "general")
    theirs = new_fleet("Other", devices=0)

    assert create(theirs.owner_id, theirs.org_id, "general").name == "general"


def test_channel_names_are_unique_whatever_their_case(org: Org) -> None:
    # Given a channel named "general"
    create(org.alice, org.org_id, "general")

    # Then the schema takes names in lower case only ...
    with pytest.raises(ValidationError):
        CreateChannelRequest(org_id=org.org_id, name="General")
    # ... and the service holds a name case-folded, should anything pass an upper-case one
    shouting: Any = CreateChannelRequest.model_construct(
        org_id=org.org_id, name="GENERAL", description="", visibility="public", password=None
    )
    with pytest.raises(ChannelNameTaken):
        channels.create_channel(user_id=org.bob, request=shouting)


def test_create_channel_stores_only_a_hash_of_its_password(org: Org) -> None:
    # When a channel is created with a password
    channel = create(org.alice, org.org_id, "secret-club", password=SECRET)

    # Then only an argon2id hash of it is stored, which verifies the password
    found = access.find(channel.channel_id)
    assert found is not None and found.password_hash is not None
    assert found.password_hash.startswith("$argon2id$")
    assert passwords.verify_password(found.password_hash, SECRET)
    table = boto3.client("dynamodb").scan(TableName=get_settings().chat_table)
    assert SECRET not in json.dumps(table["Items"])
    assert channels.channel_out(found, None).has_password is True


def test_create_channel_needs_the_member_role(org: Org, stranger: str) -> None:
    viewer = org.member("viewer")

    with pytest.raises(Forbidden):
        create(viewer, org.org_id, "general")
    with pytest.raises(NotFound):
        create(stranger, org.org_id, "general")
    assert name_holder(org.org_id, "general") is None


# --- who sees what --------------------------------------------------------------------------


def test_a_channel_of_another_org_reads_as_missing(org: Org, stranger: str) -> None:
    # Given a public channel of the org
    channel_id = new_channel(org.org_id, org.alice)

    # When someone of another org looks it up, or an id no channel has
    with pytest.raises(NotFound) as theirs:
        access.visible_channel(stranger, channel_id)
    with pytest.raises(NotFound) as nothing:
        access.visible_channel(org.alice, new_id())

    # Then both are the same 404: a stranger cannot tell the channel exists
    assert theirs.value.detail == nothing.value.detail == access.NO_CHANNEL
    with pytest.raises(NotFound):
        join(stranger, channel_id)


def test_a_public_channel_is_visible_to_every_member_of_its_org(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice)

    assert access.visible_channel(org.member("viewer"), channel_id).channel_id == channel_id


def test_a_private_channel_is_invisible_to_org_members_outside_it(org: Org) -> None:
    # Given a private channel
    channel_id = new_channel(org.org_id, org.alice, visibility="private")

    # Then an org member who was not invited cannot see it, find it, nor join it
    with pytest.raises(NotFound):
        access.visible_channel(org.bob, channel_id)
    public, _ = channels.list_channels(
        user_id=org.bob, org_id=org.org_id, scope="public", limit=None, cursor=None
    )
    assert public == []
    with pytest.raises(NotFound):
        join(org.bob, channel_id)


def test_a_private_channel_is_visible_to_its_invitees(org: Org) -> None:
    # Given a private channel to which Bob is invited
    channel_id = new_channel(org.org_id, org.alice, visibility="private")
    channels.invite(user_id=org.alice, channel_id=channel_id, invitee_id=org.bob)

    # Then Bob sees it (not yet as a member)
    channel = access.visible_channel(org.bob, channel_id)
    assert channels.channel_out(channel, access.membership(channel_id, org.bob)).joined is False


# --- lists ----------------------------------------------------------------------------------


def test_list_joined_pages_through_the_users_channels_of_the_org(org: Org) -> None:
    # Given Alice in three channels (two she created, one private, and one she joined), and a
    # public one she has not joined
    bobs = new_channel(org.org_id, org.bob)
    join(org.alice, bobs)
    mine = {
        new_channel(org.org_id, org.alice),
        new_channel(org.org_id, org.alice, visibility="private"),
        bobs,
    }
    not_joined = new_channel(org.org_id, org.bob)
    # ... and a channel of another org of hers
    elsewhere = new_fleet("Elsewhere", devices=0)
    new_channel(elsewhere.org_id, elsewhere.owner_id)

    # When she lists her channels two at a time
    pages = listing(org.alice, org.org_id, "joined", limit=2)

    # Then the pages hold exactly her three channels of this org, each once, with her membership
    assert [len(page) for page in pages][:2] == [2, 1]
    found = [channel.channel_id for page in pages for channel, _ in page]
    assert sorted(found) == sorted(mine)
    assert not_joined not in found
    assert all(member is not None and member.user_id == org.alice for p in pages for _, member in p)


def test_list_public_pages_by_name_and_says_which_the_user_joined(org: Org) -> None:
    # Given public channels (one of them joined by Bob) and a private one
    ids = {
        name: new_channel(org.org_id, org.alice, name=name) for name in ("gamma", "alpha", "beta")
    }
    new_channel(org.org_id, org.alice, name="delta", visibility="private")
    join(org.bob, ids["beta"])

    # When Bob lists the org's public channels two at a time
    pages = listing(org.bob, org.org_id, "public", limit=2)

    # Then they come by name, the private one left out, and his membership marked
    assert [len(page) for page in pages][:2] == [2, 1]
    listed = [(channel.name, member is not None) for page in pages for channel, member in page]
    assert listed == [("alpha", False), ("beta", True), ("gamma", False)]


def test_list_refuses_a_cursor_of_another_list(org: Org) -> None:
    # Given a cursor of Alice's joined list and one of the public list
    for _ in range(3):
        new_channel(org.org_id, org.alice)
    _, joined_cursor = channels.list_channels(
        user_id=org.alice, org_id=org.org_id, scope="joined", limit=1, cursor=None
    )
    _, public_cursor = channels.list_channels(
        user_id=org.alice, org_id=org.org_id, scope="public", limit=1, cursor=None
    )
    assert joined_cursor and public_cursor

    # Then neither pages on another list: another scope, or another user's channels
    with pytest.raises(BadRequest):
        channels.list_channels(
            user_id=org.alice, org_id=org.org_id, scope="public", limit=1, cursor=joined_cursor
        )
    with pytest.raises(BadRequest):
        channels.list_channels(
            user_id=org.alice, org_id=org.org_id, scope="joined", limit=1, cursor=public_cursor
        )
    with pytest.raises(BadRequest):
        channels.list_channels(
            user_id=org.bob, org_id=org.org_id, scope="joined", limit=1, cursor=joined_cursor
        )


def test_list_channels_of_an_org_one_is_not_in_is_not_found(org: Org, stranger: str) -> None:
    new_channel(org.org_id, org.alice)

    with pytest.raises(NotFound):
        channels.list_channels(
            user_id=stranger, org_id=org.org_id, scope="public", limit=None, cursor=None
        )


def test_members_pages_through_a_channels_members(org: Org) -> None:
    # Given a channel with its creator and three who joined
    channel_id = new_channel(org.org_id, org.alice)
    joined = [org.bob, org.member(), org.member("viewer")]
    for user_id in joined:
        join(user_id, channel_id)

    # When a member lists them two at a time
    found, cursor, pages = [], None, 0
    while True:
        page, cursor = channels.members(
            user_id=org.bob, channel_id=channel_id, limit=2, cursor=cursor
        )
        found += [m.user_id for m in page]
        pages += 1
        if cursor is None:
            break

    # Then every member comes once
    assert sorted(found) == sorted([org.alice, *joined])
    assert pages >= 2


def test_members_refuses_a_cursor_of_the_channels_message_list(org: Org) -> None:
    # Given messages, and a cursor of the same channel's history (the same partition)
    channel_id = new_channel(org.org_id, org.alice)
    join(org.bob, channel_id)
    for n in range(3):
        messages.post_message(
            user_id=org.alice, channel_id=channel_id, request=PostMessageRequest(text=f"m{n}")
        )
    _, _, history_cursor = messages.list_messages(
        user_id=org.alice, channel_id=channel_id, after_seq=None, limit=1, cursor=None
    )
    assert history_cursor is not None

    # When it is handed to the member list, then it is refused as a cursor of another list
    # (on DynamoDB itself a start key outside the key condition is a ValidationException: a 500)
    with pytest.raises(BadRequest) as refused:
        page, _ = channels.members(
            user_id=org.alice, channel_id=channel_id, limit=10, cursor=history_cursor
        )
        pytest.fail(
            "kumo.chat.channels.members took a cursor of the message list and answered "
            f"members {[m.user_id for m in page]}"
        )
    assert refused.value.extra["field"] == "cursor"


# --- changes --------------------------------------------------------------------------------


def test_creator_changes_the_description(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice)

    updated = update(org.alice, channel_id, description="Announcements only")

    assert updated.description == "Announcements only"
    stored = access.find(channel_id)
    assert stored is not None and stored.description == "Announcements only"


def test_an_org_admin_changes_a_channel_someone_else_created(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice)

    assert update(org.admin, channel_id, description="Moderated").description == "Moderated"


def test_a_member_who_did_not_create_the_channel_cannot_change_it(org: Org) -> None:
    # Given a channel Alice created and Bob joined
    channel_id = new_channel(org.org_id, org.alice, name="general")
    join(org.bob, channel_id)

    # When Bob tries to rename it
    with pytest.raises(Forbidden) as refused:
        update(org.bob, channel_id, name="bobs-room")

    # Then it is a 403 and nothing changed
    assert refused.value.status == 403
    stored = access.find(channel_id)
    assert stored is not None and stored.name == "general"
    assert name_holder(org.org_id, "bobs-room") is None


def test_rename_to_a_name_taken_in_the_org_is_refused(org: Org) -> None:
    # Given channels "general" and "random"
    general = new_channel(org.org_id, org.alice, name="general")
    random = new_channel(org.org_id, org.alice, name="random")

    # When "random" is renamed "general"
    with pytest.raises(ChannelNameTaken):
        update(org.alice, random, name="general")

    # Then both keep their names
    assert name_holder(org.org_id, "general") == general
    assert name_holder(org.org_id, "random") == random
    stored = access.find(random)
    assert stored is not None and stored.name == "random"


def test_rename_frees_the_old_name_and_takes_the_new(org: Org) -> None:
    # Given a public channel "general"
    channel_id = new_channel(org.org_id, org.alice, name="general")

    # When it is renamed "lobby"
    assert update(org.alice, channel_id, name="lobby").name == "lobby"

    # Then "lobby" is taken, "general" free again, and the public list shows the new name
    assert name_holder(org.org_id, "lobby") == channel_id
    assert name_holder(org.org_id, "general") is None
    with pytest.raises(ChannelNameTaken):
        create(org.bob, org.org_id, "lobby")
    fresh = create(org.bob, org.org_id, "general")
    public, _ = channels.list_channels(
        user_id=org.bob, org_id=org.org_id, scope="public", limit=None, cursor=None
    )
    assert [(c.name, c.channel_id) for c, _ in public] == [
        ("general", fresh.channel_id),
        ("lobby", channel_id),
    ]


def test_rename_to_its_own_name_is_no_change(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice, name="general")

    assert update(org.alice, channel_id, name="general").name == "general"
    assert name_holder(org.org_id, "general") == channel_id


def test_a_null_password_removes_the_password(org: Org) -> None:
    # Given a channel with a password
    channel_id = new_channel(org.org_id, org.alice, password=SECRET)

    # When its creator sends `password: null`
    updated = update(org.alice, channel_id, password=None)

    # Then it has none, and anyone in the org joins without one
    assert updated.password_hash is None
    assert channels.channel_out(updated, None).has_password is False
    join(org.bob, channel_id)
    assert access.membership(channel_id, org.bob) is not None


def test_a_new_password_replaces_the_old(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice, password=SECRET)

    updated = update(org.alice, channel_id, password="another one 8")

    assert updated.password_hash is not None and "another one 8" not in updated.password_hash
    with pytest.raises(WrongChannelPassword):
        join(org.bob, channel_id, SECRET)
    join(org.bob, channel_id, "another one 8")
    assert access.membership(channel_id, org.bob) is not None


def test_an_update_leaves_out_fields_not_sent(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice, password=SECRET)

    updated = update(org.alice, channel_id, description="Only this")

    assert updated.password_hash is not None
    assert passwords.verify_password(updated.password_hash, SECRET)


@pytest.mark.parametrize("field", ["name", "description"])
def test_a_name_or_description_cannot_be_null(org: Org, field: str) -> None:
    channel_id = new_channel(org.org_id, org.alice, name="general")

    with pytest.raises(ValidationFailed) as refused:
        update(org.alice, channel_id, **{field: None})

    assert refused.value.extra["errors"][0]["field"] == field
    stored = access.find(channel_id)
    assert stored is not None and stored.name == "general"


# --- joining --------------------------------------------------------------------------------


def test_joining_a_public_channel_starts_with_nothing_unread(org: Org) -> None:
    # Given a public channel with two messages
    channel_id = new_channel(org.org_id, org.alice)
    for text in ("one", "two"):
        messages.post_message(
            user_id=org.alice, channel_id=channel_id, request=PostMessageRequest(text=text)
        )

    # When Bob joins
    joined = join(org.bob, channel_id)

    # Then he is a member, counted, with his read marker at the newest message
    assert int(joined.member_count) == 2
    membership = access.membership(channel_id, org.bob)
    assert membership is not None and int(membership.last_read_seq) == 2
    assert channels.channel_out(joined, membership).unread == 0


@pytest.mark.parametrize("password", [None, "not the one 9"])
def test_joining_with_a_wrong_or_missing_password_is_refused(
    org: Org, password: str | None
) -> None:
    channel_id = new_channel(org.org_id, org.alice, password=SECRET)

    with pytest.raises(WrongChannelPassword) as refused:
        join(org.bob, channel_id, password)

    assert (refused.value.status, refused.value.slug) == (403, "wrong-channel-password")
    assert access.membership(channel_id, org.bob) is None
    stored = access.find(channel_id)
    assert stored is not None and int(stored.member_count) == 1


def test_joining_with_the_right_password_makes_a_member(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice, password=SECRET)

    joined = join(org.bob, channel_id, SECRET)

    assert int(joined.member_count) == 2
    assert access.membership(channel_id, org.bob) is not None


@pytest.mark.usefixtures("frozen_clock")
def test_wrong_passwords_are_limited_per_user_and_channel(org: Org) -> None:
    # Given a channel with a password, and Bob guessing wrong as often as the limit allows
    limit = abuse_limits.CHANNEL_PASSWORD_PER_USER
    channel_id = new_channel(org.org_id, org.alice, password=SECRET)
    for n in range(limit.limit):
        with pytest.raises(WrongChannelPassword):
            join(org.bob, channel_id, f"guess number {n}")

    # When he tries once more, even with the right password
    with pytest.raises(RateLimited) as limited:
        join(org.bob, channel_id, SECRET)

    # Then it is a 429 saying when the window ends, and he is still outside
    error = limited.value
    assert error.status == 429
    assert error.extra["retry_after"] == limit.window_seconds  # the window started at T0
    assert error.headers == {"Retry-After": str(limit.window_seconds)}
    assert error.extra["limit"] == limit.name
    assert access.membership(channel_id, org.bob) is None
    # ... while another user, or Bob on another channel, still has every guess
    join(org.alice, new_channel(org.org_id, org.bob, password=SECRET), SECRET)
    join(org.bob, new_channel(org.org_id, org.alice, password=SECRET), SECRET)


@pytest.mark.usefixtures("frozen_clock")
def test_the_right_password_hands_its_guess_back(org: Org) -> None:
    # Given Bob one wrong guess short of the limit, then right
    limit = abuse_limits.CHANNEL_PASSWORD_PER_USER.limit
    channel_id = new_channel(org.org_id, org.alice, password=SECRET)
    for n in range(limit - 1):
        with pytest.raises(WrongChannelPassword):
            join(org.bob, channel_id, f"guess number {n}")
    join(org.bob, channel_id, SECRET)
    channels.leave(user_id=org.bob, channel_id=channel_id)

    # Then the right guess did not count: one more wrong one is allowed, the next is not
    with pytest.raises(WrongChannelPassword):
        join(org.bob, channel_id, "wrong again 1")
    with pytest.raises(RateLimited):
        join(org.bob, channel_id, "wrong again 2")


def test_joining_twice_is_a_no_op(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice)
    join(org.bob, channel_id)
    first = access.membership(channel_id, org.bob)

    again = join(org.bob, channel_id)

    assert int(again.member_count) == 2
    second = access.membership(channel_id, org.bob)
    assert first is not None and second is not None and second.joined_at == first.joined_at


def test_an_invitee_joins_a_private_channel_without_its_password(org: Org) -> None:
    # Given a private channel with a password, and Bob invited
    channel_id = new_channel(org.org_id, org.alice, visibility="private", password=SECRET)
    channels.invite(user_id=org.alice, channel_id=channel_id, invitee_id=org.bob)

    # When Bob joins without the password
    joined = join(org.bob, channel_id)

    # Then he is a member and the invitation is spent
    assert int(joined.member_count) == 2
    assert access.membership(channel_id, org.bob) is not None
    assert access.invited(channel_id, org.bob) is False
    assert list(InvitationModel.by_user.query(invited_key(org.bob))) == []


# --- leaving, inviting, removing ------------------------------------------------------------


def test_leaving_drops_the_membership(org: Org) -> None:
    # Given Bob in a channel
    channel_id = new_channel(org.org_id, org.alice)
    join(org.bob, channel_id)

    # When he leaves, and leaves again
    channels.leave(user_id=org.bob, channel_id=channel_id)
    channels.leave(user_id=org.bob, channel_id=channel_id)

    # Then he is no member, counted once, and his joined list is empty
    assert access.membership(channel_id, org.bob) is None
    stored = access.find(channel_id)
    assert stored is not None and int(stored.member_count) == 1
    joined, _ = channels.list_channels(
        user_id=org.bob, org_id=org.org_id, scope="joined", limit=None, cursor=None
    )
    assert joined == []


def test_leaving_a_private_channel_hides_it_again(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice, visibility="private")
    channels.invite(user_id=org.alice, channel_id=channel_id, invitee_id=org.bob)
    join(org.bob, channel_id)

    channels.leave(user_id=org.bob, channel_id=channel_id)

    with pytest.raises(NotFound):
        access.visible_channel(org.bob, channel_id)


def test_an_invitation_is_stored_and_told_to_the_invitee(
    org: Org, fresh_management_client: None
) -> None:
    # Given a private channel and Bob listening on his own channel
    channel_id = new_channel(org.org_id, org.alice, name="inner-circle", visibility="private")
    bobs = listening(org.bob)

    # When Alice invites him
    invitation = channels.invite(user_id=org.alice, channel_id=channel_id, invitee_id=org.bob)

    # Then the invitation is stored under him, and he is told who invited him where
    assert (invitation.user_id, invitation.invited_by) == (org.bob, org.alice)
    assert access.invited(channel_id, org.bob)
    assert [i.channel_id for i in InvitationModel.by_user.query(invited_key(org.bob))] == [
        channel_id
    ]
    assert told(bobs, "channel_invitation") == [
        {
            "event": "channel_invitation",
            "channel": {"id": channel_id, "org_id": org.org_id, "name": "inner-circle"},
            "invited_by": org.alice,
        }
    ]


def test_a_public_channel_takes_no_invitations(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice)

    with pytest.raises(ValidationFailed) as refused:
        channels.invite(user_id=org.alice, channel_id=channel_id, invitee_id=org.bob)

    assert refused.value.extra["errors"][0]["field"] == "user_id"
    assert access.invited(channel_id, org.bob) is False


def test_only_members_of_the_org_are_invited(org: Org, stranger: str) -> None:
    channel_id = new_channel(org.org_id, org.alice, visibility="private")

    with pytest.raises(ValidationFailed) as refused:
        channels.invite(user_id=org.alice, channel_id=channel_id, invitee_id=stranger)

    assert refused.value.extra["errors"][0]["field"] == "user_id"
    assert access.invited(channel_id, stranger) is False
    with pytest.raises(NotFound):
        access.visible_channel(stranger, channel_id)


def test_a_member_of_the_channel_is_not_invited_again(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice, visibility="private")

    with pytest.raises(ValidationFailed):
        channels.invite(user_id=org.alice, channel_id=channel_id, invitee_id=org.alice)


def test_only_members_of_a_private_channel_invite(org: Org) -> None:
    # Given a private channel, Bob invited but not joined, and Carol in the org only
    channel_id = new_channel(org.org_id, org.alice, visibility="private")
    channels.invite(user_id=org.alice, channel_id=channel_id, invitee_id=org.bob)
    carol = org.member()

    # Then Bob must join first (403), and Carol cannot see the channel at all (404)
    with pytest.raises(Forbidden):
        channels.invite(user_id=org.bob, channel_id=channel_id, invitee_id=carol)
    with pytest.raises(NotFound):
        channels.invite(user_id=carol, channel_id=channel_id, invitee_id=carol)
    assert access.invited(channel_id, carol) is False


def test_the_creator_removes_a_member_who_is_told(org: Org, fresh_management_client: None) -> None:
    # Given Bob in Alice's channel, listening on his own channel
    channel_id = new_channel(org.org_id, org.alice, name="general")
    join(org.bob, channel_id)
    bobs = listening(org.bob)

    # When Alice removes him
    channels.remove_member(user_id=org.alice, channel_id=channel_id, member_id=org.bob)

    # Then he is no member, the count is down, and he is told
    assert access.membership(channel_id, org.bob) is None
    stored = access.find(channel_id)
    assert stored is not None and int(stored.member_count) == 1
    assert told(bobs, "channel_removed") == [
        {
            "event": "channel_removed",
            "channel": {"id": channel_id, "org_id": org.org_id, "name": "general"},
            "removed_by": org.alice,
        }
    ]


def test_an_org_admin_removes_a_member(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice)
    join(org.bob, channel_id)

    channels.remove_member(user_id=org.admin, channel_id=channel_id, member_id=org.bob)

    assert access.membership(channel_id, org.bob) is None


def test_a_plain_member_cannot_remove_another(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice)
    join(org.bob, channel_id)

    with pytest.raises(Forbidden):
        channels.remove_member(user_id=org.bob, channel_id=channel_id, member_id=org.alice)

    assert access.membership(channel_id, org.alice) is not None


def test_removing_someone_not_in_the_channel_is_not_found(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice)

    with pytest.raises(NotFound):
        channels.remove_member(user_id=org.alice, channel_id=channel_id, member_id=org.bob)

    stored = access.find(channel_id)
    assert stored is not None and int(stored.member_count) == 1


# --- deleting -------------------------------------------------------------------------------


def test_deleting_a_channel_purges_its_partition_and_frees_its_name(org: Org) -> None:
    # Given a private channel with members, messages (one sent with a client id) and an
    # invitation
    channel_id = new_channel(org.org_id, org.alice, name="project-x", visibility="private")
    channels.invite(user_id=org.alice, channel_id=channel_id, invitee_id=org.bob)
    join(org.bob, channel_id)
    carol = org.member()
    channels.invite(user_id=org.alice, channel_id=channel_id, invitee_id=carol)
    for n in range(3):
        messages.post_message(
            user_id=org.bob,
            channel_id=channel_id,
            request=PostMessageRequest(text=f"message {n}", client_id=f"send-{n}"),
        )
    assert AnyItem.count(channel_key(channel_id)) > 1

    # When its creator deletes it
    channels.delete_channel(user_id=org.alice, channel_id=channel_id)

    # Then nothing is left in its partition, nor under its members and invitees, and the name
    # is free
    assert access.find(channel_id) is None
    assert AnyItem.count(channel_key(channel_id)) == 0
    for user_id in (org.alice, org.bob):
        assert list(MembershipModel.by_user.query(user_key(user_id))) == []
    assert list(InvitationModel.by_user.query(invited_key(carol))) == []
    assert name_holder(org.org_id, "project-x") is None
    assert create(org.alice, org.org_id, "project-x").name == "project-x"


def test_deleting_a_channel_tells_its_members_and_invitees(
    org: Org, fresh_management_client: None
) -> None:
    # Given a private channel with Bob in it, Carol invited and Dave outside, all listening
    channel_id = new_channel(org.org_id, org.alice, name="project-x", visibility="private")
    channels.invite(user_id=org.alice, channel_id=channel_id, invitee_id=org.bob)
    join(org.bob, channel_id)
    carol, dave = org.member(), org.member()
    channels.invite(user_id=org.alice, channel_id=channel_id, invitee_id=carol)
    connections = {user: listening(user) for user in (org.alice, org.bob, carol, dave)}

    # When its creator deletes it
    channels.delete_channel(user_id=org.alice, channel_id=channel_id)

    # Then the members and the invitee are told, and nobody else
    expected = {
        "event": "channel_deleted",
        "channel": {"id": channel_id, "org_id": org.org_id, "name": "project-x"},
        "deleted_by": org.alice,
    }
    for user in (org.alice, org.bob, carol):
        assert told(connections[user], "channel_deleted") == [expected]
    assert posted_to(connections[dave]) == []


def test_an_org_admin_deletes_a_channel_someone_else_created(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice, name="general")

    channels.delete_channel(user_id=org.admin, channel_id=channel_id)

    assert access.find(channel_id) is None
    assert name_holder(org.org_id, "general") is None


def test_a_plain_member_cannot_delete_the_channel(org: Org) -> None:
    channel_id = new_channel(org.org_id, org.alice, name="general")
    join(org.bob, channel_id)

    with pytest.raises(Forbidden):
        channels.delete_channel(user_id=org.bob, channel_id=channel_id)

    assert access.find(channel_id) is not None
    assert name_holder(org.org_id, "general") == channel_id
