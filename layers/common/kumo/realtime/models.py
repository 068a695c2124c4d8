"""Connections table items (kumo-<stage>-connections). Key building lives here only.

Access patterns (all GetItem or Query):
  one connection               CONN#<connection id> / META      (who, when, how many subs)
  a connection's subscriptions CONN#<connection id> / begins_with SUB#   ($disconnect cleanup)
  a channel's connections      CHAN#<channel> / <connection id>        (fan-out)

Channels start with the org id (`<org>#device#<device>`, `<org>#alerts`, `<org>#status`,
`<org>#chat#<channel>`, `<org>#sketch#<sketch>`), so a fan-out can only reach connections
that subscribed within that org, and subscribing checks the caller's membership first; a
user's own channel (`user#<user>`) takes subscriptions from that user only. Every item
carries `expires_at`: API Gateway closes a connection after two hours at most, and a missed
`$disconnect` must not leave subscribers behind for ever.
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from kumo.core.config import get_settings

META = "META"
SUB_PREFIX = "SUB#"
# API Gateway's maximum connection duration, plus a margin for a late $disconnect.
CONNECTION_TTL_SECONDS = 2 * 3600 + 600


def connection_key(connection_id: str) -> str:
    return f"CONN#{connection_id}"


def channel_key(channel: str) -> str:
    return f"CHAN#{channel}"


def subscription_sort_key(channel: str) -> str:
    return f"{SUB_PREFIX}{channel}"


def device_channel(org_id: str, device_id: str) -> str:
    return f"{org_id}#device#{device_id}"


def org_channel(org_id: str, topic: str) -> str:
    return f"{org_id}#{topic}"


def chat_channel(org_id: str, channel_id: str) -> str:
    return f"{org_id}#chat#{channel_id}"


def sketch_channel(org_id: str, sketch_id: str) -> str:
    return f"{org_id}#sketch#{sketch_id}"


def user_channel(user_id: str) -> str:
    """A user's own channel (invitations, removals, deleted channels): no org, as it follows
    the user into every org; only that user may subscribe to it."""
    return f"user#{user_id}"


class ConnectionsItem(Model):
    """An item of the connections table: the table and its key, for every model stored there."""

    class Meta:
        table_name = get_settings().connections_table
        region = get_settings().region

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class ConnectionModel(ConnectionsItem):
    """CONN#<id> / META: the connection itself; CONN#<id> / SUB#<channel>: one subscription,
    kept beside it so $disconnect finds what to remove with one Query."""

    user_id = UnicodeAttribute()
    connected_at = UnicodeAttribute(null=True)
    subscriptions = NumberAttribute(default=0)
    expires_at = NumberAttribute()


class ChannelMemberModel(ConnectionsItem):
    """CHAN#<channel> / <connection id>: what a fan-out reads."""

    user_id = UnicodeAttribute()
    expires_at = NumberAttribute()
