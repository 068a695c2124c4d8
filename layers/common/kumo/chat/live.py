"""What chat pushes on the WebSocket API (kumo.realtime.fanout, shards): a channel's message
events to its subscribers, a sketch's operations to its viewers, and invitations, removals and
deletions to a user's own channel. Pushes follow storage and are best effort; a client that
missed one reads `after_seq`."""

from __future__ import annotations

from typing import Any

from kumo.realtime import connections, fanout, shards


def tell_channel(org_id: str, channel_id: str, message: dict[str, Any]) -> int:
    return shards.publish_chat(org_id, channel_id, [message])


def tell_sketch(org_id: str, sketch_id: str, message: dict[str, Any]) -> int:
    return shards.publish_sketch(org_id, sketch_id, [message])


def tell_user(user_id: str, message: dict[str, Any]) -> int:
    return fanout.publish_to_user(user_id, message)


def stop_streaming(org_id: str, channel_id: str, user_id: str) -> int:
    """The user's connections stop receiving the channel (they left or were removed)."""
    return connections.drop_chat_subscriber(org_id, channel_id, user_id)
