"""Who may see a channel, read by every chat route and by the live stream's subscribe (which
must stay light: no password hashing, no media here)."""

from __future__ import annotations

from typing import Final

from kumo.chat.models import (
    META,
    ChannelModel,
    InvitationModel,
    MembershipModel,
    SketchModel,
    channel_key,
    invite_sort_key,
    member_sort_key,
    sketch_key,
)
from kumo.core import dynamo
from kumo.core.errors import Forbidden, NotFound
from kumo.core.ids import is_id
from kumo.orgs.service import require_org_role

NO_CHANNEL: Final = "No such channel."
NO_SKETCH: Final = "No such sketch."


def find(channel_id: str) -> ChannelModel | None:
    if not is_id(channel_id):
        return None
    return dynamo.get_or_none(ChannelModel, channel_key(channel_id), META, consistent_read=True)


def membership(channel_id: str, user_id: str) -> MembershipModel | None:
    return dynamo.get_or_none(
        MembershipModel, channel_key(channel_id), member_sort_key(user_id), consistent_read=True
    )


def invited(channel_id: str, user_id: str) -> bool:
    invitation = dynamo.get_or_none(
        InvitationModel, channel_key(channel_id), invite_sort_key(user_id), consistent_read=True
    )
    return invitation is not None


def visible_channel(user_id: str, channel_id: str) -> ChannelModel:
    """The channel, if the user may see it: in its org, and for a private one a member or
    invited; otherwise the 404 of a channel that does not exist."""
    channel = find(channel_id)
    if channel is None:
        raise NotFound(NO_CHANNEL)
    try:
        require_org_role(channel.org_id, user_id, "viewer")
    except NotFound as error:
        raise NotFound(NO_CHANNEL) from error
    if channel.visibility == "private" and not (
        membership(channel_id, user_id) or invited(channel_id, user_id)
    ):
        raise NotFound(NO_CHANNEL)
    return channel


def member_channel(user_id: str, channel_id: str) -> tuple[ChannelModel, MembershipModel]:
    """The channel and the user's membership; a 403 for an org member who has not joined a
    channel they can see, the 404 otherwise."""
    channel = visible_channel(user_id, channel_id)
    member = membership(channel_id, user_id)
    if member is None:
        raise Forbidden("Join the channel first.")
    return channel, member


def channel_org(user_id: str, channel_id: str) -> str:
    """The org of a channel the user has joined (the live stream's check); 404 otherwise, so a
    stranger cannot tell a channel exists."""
    channel = find(channel_id)
    if channel is None or membership(channel_id, user_id) is None:
        raise NotFound(NO_CHANNEL)
    try:
        require_org_role(channel.org_id, user_id, "viewer")
    except NotFound as error:
        raise NotFound(NO_CHANNEL) from error
    return channel.org_id


def find_sketch(sketch_id: str) -> SketchModel | None:
    if not is_id(sketch_id):
        return None
    return dynamo.get_or_none(SketchModel, sketch_key(sketch_id), META, consistent_read=True)


def member_sketch(
    user_id: str, sketch_id: str, channel_id: str | None = None
) -> tuple[ChannelModel, SketchModel]:
    """A sketch of a channel the user has joined (of `channel_id`, when the route names one);
    the 404 of a sketch that does not exist otherwise, or the channel's 403 to join first."""
    sketch = find_sketch(sketch_id)
    if sketch is None or (channel_id is not None and sketch.channel_id != channel_id):
        raise NotFound(NO_SKETCH)
    try:
        channel, _ = member_channel(user_id, sketch.channel_id)
    except NotFound as error:
        raise NotFound(NO_SKETCH) from error
    return channel, sketch


def sketch_org(user_id: str, sketch_id: str) -> str:
    """The org of a sketch in a channel the user has joined (the live stream's check)."""
    sketch = find_sketch(sketch_id)
    if sketch is None:
        raise NotFound(NO_SKETCH)
    try:
        return channel_org(user_id, sketch.channel_id)
    except NotFound as error:
        raise NotFound(NO_SKETCH) from error
