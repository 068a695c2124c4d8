"""Forgetting a WebSocket connection: on $disconnect, and when a push finds it gone.

Apart from kumo.realtime.fanout so that $disconnect, which posts nothing, does not import the
management client (nor need WEBSOCKET_MANAGEMENT_URL).
"""

from __future__ import annotations

from kumo.realtime.models import ChannelMemberModel, ConnectionModel, channel_key, connection_key


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
