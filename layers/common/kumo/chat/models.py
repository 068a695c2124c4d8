"""Chat table items. Key building for this context lives here and nowhere else.

Access patterns (all GetItem or Query):
  one channel                    CHANNEL#<id> / META           (its message counter: `seq`)
  a channel's members            CHANNEL#<id> / begins_with MEMBER#
  one membership                 CHANNEL#<id> / MEMBER#<user>  (role, read marker)
  a channel's invitations        CHANNEL#<id> / begins_with INVITE#
  a channel's messages           CHANNEL#<id> / begins_with MSG# (by sequence number)
  a retried send                 CHANNEL#<id> / SENT#<user>#<client id>
  a name taken in an org         ORG#<org> / NAME#<lower-cased name>
  an org's public channels       gsi1: PUBLIC#<org> / <lower-cased name>
  a user's channels              gsi2: USER#<user> / <channel id>   (memberships)
  a user's invitations           gsi2: INVITED#<user> / <channel id>
  a channel's sketches           CHANNEL#<id> / begins_with SKETCH#
  one sketch                     SKETCH#<id> / META             (its operation counter: `seq`)
  a sketch's operations          SKETCH#<id> / begins_with OP#  (by sequence number)
  a sketch's compacted segments  SKETCH#<id> / begins_with SEG# (by first sequence number)
  a user's presence              PRESENCE#<user> / META         (their last heartbeat)
  users who may still be online  gsi1: PRESENT#<shard> / <deadline>#<user>   (the sweep)
  rate counters                  RATE#<limit>#<subject> / WINDOW#<start> (kumo.core.rate_limit)

A channel's messages sit in its partition under their sequence number, zero-padded, so a
Query reads them in order from any point (`after_seq`) and a gap is visible at once.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from kumo.core.config import get_settings

META = "META"
MEMBER_PREFIX = "MEMBER#"
INVITE_PREFIX = "INVITE#"
MESSAGE_PREFIX = "MSG#"
SKETCH_PREFIX = "SKETCH#"
OP_PREFIX = "OP#"
SEGMENT_PREFIX = "SEG#"
_SEQ_DIGITS = 12


def channel_key(channel_id: str) -> str:
    return f"CHANNEL#{channel_id}"


def member_sort_key(user_id: str) -> str:
    return f"{MEMBER_PREFIX}{user_id}"


def invite_sort_key(user_id: str) -> str:
    return f"{INVITE_PREFIX}{user_id}"


def message_sort_key(seq: int) -> str:
    return f"{MESSAGE_PREFIX}{seq:0{_SEQ_DIGITS}d}"


def sketch_key(sketch_id: str) -> str:
    return f"{SKETCH_PREFIX}{sketch_id}"


def op_sort_key(seq: int) -> str:
    return f"{OP_PREFIX}{seq:0{_SEQ_DIGITS}d}"


def segment_sort_key(first_seq: int) -> str:
    return f"{SEGMENT_PREFIX}{first_seq:0{_SEQ_DIGITS}d}"


def sent_sort_key(user_id: str, client_id: str) -> str:
    return f"SENT#{user_id}#{client_id}"


def name_key(org_id: str) -> str:
    return f"ORG#{org_id}"


def name_sort_key(name: str) -> str:
    return f"NAME#{name.casefold()}"


def public_key(org_id: str) -> str:
    return f"PUBLIC#{org_id}"


def presence_key(user_id: str) -> str:
    return f"PRESENCE#{user_id}"


def present_key(shard: int) -> str:
    return f"PRESENT#{shard}"


def user_key(user_id: str) -> str:
    return f"USER#{user_id}"


def invited_key(user_id: str) -> str:
    return f"INVITED#{user_id}"


class ChatItem(Model):
    """An item of the chat table: the table and its key, for every model stored there."""

    class Meta:
        table_name = get_settings().chat_table
        region = get_settings().region

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # PynamoDB caches a connection on the class first used, and a subclass not connected
        # yet inherits its parent's, with a table description that lacks the subclass's
        # indexes (a Query on gsi1 then fails): each model connects on its own.
        cls._connection = None


class AnyItem(ChatItem):
    """Any item of the table, by its key only: what a purge reads and deletes."""


class PublicChannelsIndex(GlobalSecondaryIndex["ChannelModel"]):
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class ChannelModel(ChatItem):
    sk = UnicodeAttribute(range_key=True, default=META)
    channel_id = UnicodeAttribute()
    org_id = UnicodeAttribute()
    name = UnicodeAttribute()
    description = UnicodeAttribute(default="")
    # public: any org member may find and join it; private: by invitation only.
    visibility = UnicodeAttribute()
    # argon2id, or None for a channel without a password.
    password_hash = UnicodeAttribute(null=True)
    created_by = UnicodeAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    # The last message's sequence number: moved by one in the transaction that stores the
    # next message, on the condition that it still is what the sender read.
    seq = NumberAttribute(default=0)
    member_count = NumberAttribute(default=0)
    # Public channels only (a sparse index): what members browse.
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)

    public = PublicChannelsIndex()


class NameModel(ChatItem):
    """ORG#<org> / NAME#<name>: a name taken in the org, so two channels cannot share it."""

    channel_id = UnicodeAttribute()


class UserChannelsIndex(GlobalSecondaryIndex["MembershipModel"]):
    class Meta:
        index_name = "gsi2"
        projection = AllProjection()

    gsi2pk = UnicodeAttribute(hash_key=True)
    gsi2sk = UnicodeAttribute(range_key=True)


class MembershipModel(ChatItem):
    channel_id = UnicodeAttribute()
    org_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    joined_at = UnicodeAttribute()
    # The newest message the member has read: unread = the channel's seq minus this.
    last_read_seq = NumberAttribute(default=0)
    gsi2pk = UnicodeAttribute()
    gsi2sk = UnicodeAttribute()

    by_user = UserChannelsIndex()


class InvitationModel(ChatItem):
    """An invitation to a private channel, spent by joining."""

    channel_id = UnicodeAttribute()
    org_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    invited_by = UnicodeAttribute()
    invited_at = UnicodeAttribute()
    gsi2pk = UnicodeAttribute()
    gsi2sk = UnicodeAttribute()

    by_user = UserChannelsIndex()


class MessageModel(ChatItem):
    channel_id = UnicodeAttribute()
    seq = NumberAttribute()
    message_id = UnicodeAttribute()
    author_id = UnicodeAttribute()
    text = UnicodeAttribute(default="")
    media_id = UnicodeAttribute(null=True)
    # A sketch of the channel as it was at `sketch_seq` (a snapshot reference).
    sketch_id = UnicodeAttribute(null=True)
    sketch_seq = NumberAttribute(null=True)
    sketch_title = UnicodeAttribute(null=True)
    # Members the message names: each is told on their own channel.
    mentions = UnicodeSetAttribute(null=True)
    client_id = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    edited_at = UnicodeAttribute(null=True)
    # A deleted message keeps its place (its sequence number) with no content.
    deleted = BooleanAttribute(default=False)
    deleted_by = UnicodeAttribute(null=True)


class SketchModel(ChatItem):
    """SKETCH#<id> / META: a channel's drawing, and the counter of its operations."""

    sk = UnicodeAttribute(range_key=True, default=META)
    sketch_id = UnicodeAttribute()
    channel_id = UnicodeAttribute()
    org_id = UnicodeAttribute()
    title = UnicodeAttribute()
    width = NumberAttribute()
    height = NumberAttribute()
    created_by = UnicodeAttribute()
    created_at = UnicodeAttribute()
    # The last operation's sequence number, moved as a channel's message counter is.
    seq = NumberAttribute(default=0)
    # Operations up to here are in compacted segments too.
    compacted_seq = NumberAttribute(default=0)


class SketchRefModel(ChatItem):
    """CHANNEL#<id> / SKETCH#<sketch id>: the sketch in its channel's list."""

    sketch_id = UnicodeAttribute()
    title = UnicodeAttribute()
    created_by = UnicodeAttribute()
    created_at = UnicodeAttribute()


class OpModel(ChatItem):
    """SKETCH#<id> / OP#<seq>: one operation, append-only (a stroke, or the erasing or
    restoring of strokes: tombstones, so every state can be replayed)."""

    seq = NumberAttribute()
    author_id = UnicodeAttribute()
    at = UnicodeAttribute()
    # Milliseconds since the sketch was created: the replay's clock.
    t_ms = NumberAttribute()
    # The operation as the client sent it, validated (kumo.chat.schemas.SketchOp), as JSON.
    op = UnicodeAttribute()
    client_id = UnicodeAttribute(null=True)


class SegmentModel(ChatItem):
    """SKETCH#<id> / SEG#<first seq>: operations first..last, gzipped JSON in S3."""

    first_seq = NumberAttribute()
    last_seq = NumberAttribute()
    key = UnicodeAttribute()
    bytes = NumberAttribute()


class SentModel(ChatItem):
    """A client's id for a send: a retry answers the message stored the first time."""

    seq = NumberAttribute()
    expires_at = NumberAttribute()


class PresentIndex(GlobalSecondaryIndex["PresenceModel"]):
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class PresenceModel(ChatItem):
    """What the user's last heartbeat said, on any of their connections. It counts until
    `fresh_until`; DynamoDB's TTL removes it some time later, so readers go by the former."""

    sk = UnicodeAttribute(range_key=True, default=META)
    # online or away: offline is no item, or one past `fresh_until`.
    status = UnicodeAttribute()
    seen_at = UnicodeAttribute()
    fresh_until = NumberAttribute()
    # What the channels the user shares were last told, and when (pushes are throttled).
    told_status = UnicodeAttribute(null=True)
    told_at = NumberAttribute(default=0)
    expires_at = NumberAttribute()
    # While it may count as online (a sparse index): what the sweep reads.
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)

    present = PresentIndex()


class RateCounterModel(ChatItem):
    """A rate-limit window of this context's limits (kumo.core.rate_limit, ADR 24)."""

    hits = NumberAttribute(default=0)
    expires_at = NumberAttribute()
