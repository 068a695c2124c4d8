"""Channels (/api/v1/chat/channels): create, find, change, delete, join, leave, invite, remove.

Who sees what: a channel belongs to an org, and someone outside the org gets the same 404 as
for a channel that does not exist. A public channel is visible to every member of its org and
open to join (with its password, if it has one); a private one only to its members and to
those invited, who join without the password. The creator and the org's admins change and
delete a channel, and remove its members; a private channel only its creator and the admins
among its members, as its privacy holds against admins too.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from aws_lambda_powertools import Logger

from kumo.chat import live, segments
from kumo.chat.access import (
    NO_CHANNEL,
    find,
    find_sketch,
    invited,
    member_channel,
    membership,
    visible_channel,
)
from kumo.chat.errors import ChannelNameTaken, WrongChannelPassword
from kumo.chat.models import (
    INVITE_PREFIX,
    MEMBER_PREFIX,
    SKETCH_PREFIX,
    AnyItem,
    ChannelModel,
    ChatItem,
    InvitationModel,
    MembershipModel,
    NameModel,
    RateCounterModel,
    SketchRefModel,
    channel_key,
    invite_sort_key,
    invited_key,
    member_sort_key,
    name_key,
    name_sort_key,
    public_key,
    sketch_key,
    user_key,
)
from kumo.chat.schemas import (
    ChannelMemberOut,
    ChannelOut,
    CreateChannelRequest,
    UpdateChannelRequest,
)
from kumo.core import abuse_limits as limits
from kumo.core import clock, dynamo, rate_limit
from kumo.core.errors import Forbidden, KumoError, NotFound, invalid
from kumo.core.ids import new_id
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor
from kumo.identity import passwords
from kumo.orgs.service import require_org_role

logger = Logger(child=True)

_CHANGED: Final = "The channel changed meanwhile; try again."
Scope = Literal["joined", "public"]


def _taken(name: str) -> ChannelNameTaken:
    return ChannelNameTaken(f"The organization has a channel named {name!r} already.")


def _may_manage(user_id: str, channel: ChannelModel) -> None:
    if channel.created_by == user_id:
        return
    try:
        require_org_role(channel.org_id, user_id, "admin")
    except Forbidden as error:
        raise Forbidden("Only the channel's creator or an org admin may do this.") from error


def _membership_item(channel: ChannelModel, user_id: str, now: str) -> MembershipModel:
    return MembershipModel(
        channel_key(channel.channel_id),
        member_sort_key(user_id),
        channel_id=channel.channel_id,
        org_id=channel.org_id,
        user_id=user_id,
        joined_at=now,
        # A newcomer starts with nothing unread.
        last_read_seq=int(channel.seq),
        gsi2pk=user_key(user_id),
        gsi2sk=f"{channel.org_id}#{channel.channel_id}",
    )


# --- create, read, change -------------------------------------------------------------------


def create_channel(*, user_id: str, request: CreateChannelRequest) -> ChannelModel:
    require_org_role(request.org_id, user_id, "member")
    channel_id, now = new_id(), clock.utc_iso()
    public = request.visibility == "public"
    channel = ChannelModel(
        channel_key(channel_id),
        channel_id=channel_id,
        org_id=request.org_id,
        name=request.name,
        description=request.description,
        visibility=request.visibility,
        password_hash=passwords.hash_password(request.password) if request.password else None,
        created_by=user_id,
        created_at=now,
        updated_at=now,
        seq=0,
        member_count=1,
        gsi1pk=public_key(request.org_id) if public else None,
        gsi1sk=request.name if public else None,
    )

    def explain() -> KumoError | None:
        taken = dynamo.get_or_none(NameModel, name_key(request.org_id), name_sort_key(request.name))
        return _taken(request.name) if taken else None

    with dynamo.transaction(explain, changed=_CHANGED) as write:
        write.save(
            NameModel(name_key(request.org_id), name_sort_key(request.name), channel_id=channel_id),
            condition=NameModel.pk.does_not_exist(),
        )
        write.save(channel, condition=ChannelModel.pk.does_not_exist())
        write.save(_membership_item(channel, user_id, now))
    logger.info("channel created", channel_id=channel_id, org_id=request.org_id)
    return channel


def list_channels(
    *, user_id: str, org_id: str, scope: Scope, limit: int | None, cursor: str | None
) -> tuple[list[tuple[ChannelModel, MembershipModel | None]], str | None]:
    """The user's channels in the org (`joined`), or the org's public ones by name; each with
    the user's membership, if any."""
    require_org_role(org_id, user_id, "viewer")
    if scope == "joined":
        partition = user_key(user_id)
        memberships = MembershipModel.by_user.query(
            partition,
            MembershipModel.gsi2sk.startswith(f"{org_id}#"),
            limit=clamp_limit(limit),
            last_evaluated_key=decode_cursor(cursor, partition=("gsi2pk", partition)),
        )
        mine = list(memberships)
        channels = {c.channel_id: c for c in _channels([m.channel_id for m in mine])}
        pairs: list[tuple[ChannelModel, MembershipModel | None]] = [
            (channels[m.channel_id], m) for m in mine if m.channel_id in channels
        ]
        return pairs, encode_cursor(memberships.last_evaluated_key)
    partition = public_key(org_id)
    public = ChannelModel.public.query(
        partition,
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(cursor, partition=("gsi1pk", partition)),
    )
    found = list(public)
    return [(c, membership(c.channel_id, user_id)) for c in found], encode_cursor(
        public.last_evaluated_key
    )


def _channels(channel_ids: list[str]) -> list[ChannelModel]:
    if not channel_ids:
        return []
    return list(ChannelModel.batch_get([(channel_key(i), "META") for i in channel_ids]))


def update_channel(*, user_id: str, channel_id: str, request: UpdateChannelRequest) -> ChannelModel:
    channel = visible_channel(user_id, channel_id)
    _may_manage(user_id, channel)
    sent = request.model_fields_set
    for field in request.not_null & sent:
        if getattr(request, field) is None:
            raise invalid(field, f"{field} cannot be null.")
    actions: list[Any] = [ChannelModel.updated_at.set(clock.utc_iso())]
    if request.description is not None:
        actions.append(ChannelModel.description.set(request.description))
    if "password" in sent:
        hashed = passwords.hash_password(request.password) if request.password else None
        actions.append(
            ChannelModel.password_hash.set(hashed)
            if hashed
            else ChannelModel.password_hash.remove()
        )
    renamed = request.name is not None and request.name != channel.name
    if renamed and request.name is not None:
        actions.append(ChannelModel.name.set(request.name))
        if channel.visibility == "public":
            actions.append(ChannelModel.gsi1sk.set(request.name))
    new_name = request.name or channel.name

    def explain() -> KumoError | None:
        if renamed:
            taken = dynamo.get_or_none(NameModel, name_key(channel.org_id), name_sort_key(new_name))
            if taken is not None and taken.channel_id != channel_id:
                return _taken(new_name)
        return None

    with dynamo.transaction(explain, changed=_CHANGED) as write:
        write.update(channel, actions=actions, condition=ChannelModel.name == channel.name)
        if renamed:
            write.delete(NameModel(name_key(channel.org_id), name_sort_key(channel.name)))
            write.save(
                NameModel(name_key(channel.org_id), name_sort_key(new_name), channel_id=channel_id),
                condition=NameModel.pk.does_not_exist(),
            )
    updated = find(channel_id)
    if updated is None:
        raise NotFound(NO_CHANNEL)
    return updated


def members(
    *, user_id: str, channel_id: str, limit: int | None, cursor: str | None
) -> tuple[list[MembershipModel], str | None]:
    visible_channel(user_id, channel_id)
    partition = channel_key(channel_id)
    results = MembershipModel.query(
        partition,
        MembershipModel.sk.startswith(MEMBER_PREFIX),
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(
            cursor, partition=("pk", partition), sort_prefix=("sk", MEMBER_PREFIX)
        ),
    )
    return list(results), encode_cursor(results.last_evaluated_key)


# --- joining and leaving --------------------------------------------------------------------


def join(*, user_id: str, channel_id: str, password: str | None) -> ChannelModel:
    """Join a public channel (with its password, if it has one) or a private one invited to.
    Joining twice is a no-op. Wrong passwords are limited per user and channel: a guess is
    spent before the hash is checked and handed back when it was right."""
    channel = visible_channel(user_id, channel_id)
    if membership(channel_id, user_id) is not None:
        return channel
    was_invited = invited(channel_id, user_id)
    if channel.password_hash and not was_invited:
        subject = f"{user_id}#{channel_id}"
        spent = rate_limit.spend(RateCounterModel, limits.CHANNEL_PASSWORD_PER_USER, subject)
        # argon2's verification compares in constant time; no password is checked against a
        # dummy hash, which takes as long.
        if not passwords.verify_password(channel.password_hash, password or ""):
            raise WrongChannelPassword("The channel's password is wrong.")
        spent.refund()
    now = clock.utc_iso()
    with dynamo.transaction(lambda: None, changed=_CHANGED) as write:
        write.save(
            _membership_item(channel, user_id, now),
            condition=MembershipModel.sk.does_not_exist(),
        )
        write.update(
            channel,
            actions=[ChannelModel.member_count.add(1)],
            condition=ChannelModel.pk.exists(),
        )
        if was_invited:
            write.delete(InvitationModel(channel_key(channel_id), invite_sort_key(user_id)))
    logger.info("channel joined", channel_id=channel_id)
    joined = find(channel_id)
    if joined is None:
        raise NotFound(NO_CHANNEL)
    return joined


def _drop_member(channel: ChannelModel, user_id: str) -> None:
    with dynamo.transaction(lambda: None, changed=_CHANGED) as write:
        write.delete(
            MembershipModel(channel_key(channel.channel_id), member_sort_key(user_id)),
            condition=MembershipModel.sk.exists(),
        )
        write.update(
            channel,
            actions=[ChannelModel.member_count.add(-1)],
            condition=ChannelModel.pk.exists(),
        )
    live.stop_streaming(channel.org_id, channel.channel_id, user_id)


def leave(*, user_id: str, channel_id: str) -> None:
    """Leaving a channel not joined is a no-op."""
    channel = visible_channel(user_id, channel_id)
    if membership(channel_id, user_id) is not None:
        _drop_member(channel, user_id)


def invite(*, user_id: str, channel_id: str, invitee_id: str) -> InvitationModel:
    """A member of a private channel invites a member of its org; they are told on their own
    live channel and join without the password."""
    channel, _ = member_channel(user_id, channel_id)
    if channel.visibility != "private":
        raise invalid("user_id", "A public channel needs no invitation: anyone in the org joins.")
    try:
        require_org_role(channel.org_id, invitee_id, "viewer")
    except NotFound as error:
        raise invalid("user_id", "No such member of this organization.") from error
    if membership(channel_id, invitee_id) is not None:
        raise invalid("user_id", "They are a member of the channel already.")
    invitation = InvitationModel(
        channel_key(channel_id),
        invite_sort_key(invitee_id),
        channel_id=channel_id,
        org_id=channel.org_id,
        user_id=invitee_id,
        invited_by=user_id,
        invited_at=clock.utc_iso(),
        gsi2pk=invited_key(invitee_id),
        gsi2sk=f"{channel.org_id}#{channel_id}",
    )
    invitation.save()
    live.tell_user(
        invitee_id,
        {"event": "channel_invitation", "channel": _summary(channel), "invited_by": user_id},
    )
    return invitation


def remove_member(*, user_id: str, channel_id: str, member_id: str) -> None:
    channel = visible_channel(user_id, channel_id)
    _may_manage(user_id, channel)
    if membership(channel_id, member_id) is None:
        raise NotFound("No such member of this channel.")
    _drop_member(channel, member_id)
    live.tell_user(
        member_id,
        {"event": "channel_removed", "channel": _summary(channel), "removed_by": user_id},
    )


# --- deleting -------------------------------------------------------------------------------


def delete_channel(*, user_id: str, channel_id: str) -> None:
    """The creator or an org admin deletes the channel: its record and name at once (it is
    gone for everyone), then its members are told, then everything else in its partition
    (messages, memberships, invitations) is removed, and its sketches with their files."""
    channel = visible_channel(user_id, channel_id)
    _may_manage(user_id, channel)
    told = [m.user_id for m in _all(channel_id, MEMBER_PREFIX, MembershipModel)]
    invitees = [i.user_id for i in _all(channel_id, INVITE_PREFIX, InvitationModel)]
    with dynamo.transaction(lambda: None, changed=_CHANGED) as write:
        write.delete(channel, condition=ChannelModel.pk.exists())
        write.delete(NameModel(name_key(channel.org_id), name_sort_key(channel.name)))
    for member_id in told:
        live.stop_streaming(channel.org_id, channel_id, member_id)
    for member_id in told + invitees:
        live.tell_user(
            member_id,
            {"event": "channel_deleted", "channel": _summary(channel), "deleted_by": user_id},
        )
    removed = sum(
        _remove_sketch(ref.sketch_id) for ref in _all(channel_id, SKETCH_PREFIX, SketchRefModel)
    )
    removed += _purge(channel_key(channel_id))
    logger.info("channel deleted", channel_id=channel_id, items=removed)


def _all[M: ChatItem](channel_id: str, prefix: str, model: type[M]) -> list[M]:
    return list(model.query(channel_key(channel_id), model.sk.startswith(prefix)))


def _remove_sketch(sketch_id: str) -> int:
    """A deleted channel's sketch: its segment files, then its partition."""
    sketch = find_sketch(sketch_id)
    files = segments.remove(sketch) if sketch is not None else 0
    return files + _purge(sketch_key(sketch_id))


def _purge(partition: str) -> int:
    removed = 0
    with AnyItem.batch_write() as batch:
        for item in AnyItem.query(partition, attributes_to_get=["pk", "sk"]):
            batch.delete(item)
            removed += 1
    return removed


def _summary(channel: ChannelModel) -> dict[str, str]:
    return {"id": channel.channel_id, "org_id": channel.org_id, "name": channel.name}


def channel_out(channel: ChannelModel, member: MembershipModel | None) -> ChannelOut:
    return ChannelOut(
        id=channel.channel_id,
        org_id=channel.org_id,
        name=channel.name,
        description=channel.description,
        visibility=channel.visibility,  # type: ignore[arg-type]
        has_password=bool(channel.password_hash),
        created_by=channel.created_by,
        created_at=channel.created_at,
        updated_at=channel.updated_at,
        last_seq=int(channel.seq),
        member_count=int(channel.member_count),
        joined=member is not None,
        unread=max(0, int(channel.seq) - int(member.last_read_seq)) if member else None,
    )


def member_out(member: MembershipModel) -> ChannelMemberOut:
    return ChannelMemberOut(
        user_id=member.user_id, joined_at=member.joined_at, last_read_seq=int(member.last_read_seq)
    )
