"""Chat's own problem types: stable slugs a client can act on without reading the detail."""

from __future__ import annotations

from kumo.core.errors import Conflict, Forbidden


class ChannelNameTaken(Conflict):
    slug, title = "channel-name-taken", "Channel name taken"


class WrongChannelPassword(Forbidden):
    slug, title = "wrong-channel-password", "Wrong channel password"


class MessageDeleted(Conflict):
    slug, title = "message-deleted", "The message is deleted"
