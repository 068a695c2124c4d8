"""Forgetting a WebSocket connection: on $disconnect, and when a push finds it gone.

Apart from kumo.realtime.fanout so that $disconnect, which posts nothing, does not import the
management client (nor need WEBSOCKET_MANAGEMENT_URL).
"""

from __future__ import annotations

from contextlib import suppress

from pynamodb.exceptions import UpdateError

from kumo.realtime.models import (
    META,
    ChannelMemberModel,
    ConnectionModel,
    channel_key,
    chat_channel,
    connection_key,
    subscription_sort_key,
)


def remove_connection(connection_id: str, *, also: str = "") -> int:
    """Delete a connection, its subscriptions and its channel memberships, plus its membership
    of `also` (the channel that found it gone, whatever else survived); how many items."""
    items = list(ConnectionModel.query(connection_key(connection_id)))
    channels = {i.sk.removeprefix("SUB#") for i in items if i.sk.startswith("SUB#")}
    if also:
        channels.add(also)
    with ConnectionModel.batch_write() as batch:
        for item in items:
            batch.delete(item)
    with ChannelMemberModel.batch_write() as members:
        for channel in channels:
            members.delete(ChannelMemberModel(channel_key(channel), connection_id))
    return len(items) + len(channels)


def drop_chat_subscriber(org_id: str, channel_id: str, user_id: str) -> int:
    """Unsubscribe every connection of `user_id` from a chat channel they no longer belong to
    (they left, were removed, or the channel is gone), so no later message reaches them; how
    many connections."""
    channel = chat_channel(org_id, channel_id)
    theirs = [
        member
        for member in ChannelMemberModel.query(channel_key(channel))
        if member.user_id == user_id
    ]
    for member in theirs:
        member.delete()
        ConnectionModel(connection_key(member.sk), subscription_sort_key(channel)).delete()
        with suppress(UpdateError):  # the connection closed meanwhile
            ConnectionModel(connection_key(member.sk), META).update(
                actions=[ConnectionModel.subscriptions.add(-1)],
                condition=ConnectionModel.pk.exists(),
            )
    return len(theirs)
