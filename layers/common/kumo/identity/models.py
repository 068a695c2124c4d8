"""Identity table items. Key building for this context lives here and nowhere else.

Access patterns (all GetItem or Query):
  user by id            USER#<id> / PROFILE
  user by e-mail        EMAIL#<email> / EMAIL  ->  user id  (also makes e-mail unique)
  users, newest first   gsi1: USERS / <created_at>#<id>
  refresh token         REFRESH#<sha256> / REFRESH
  token families        USER#<id> / FAMILY#<family id>
  one-time tokens       TOKEN#<sha256> / VERIFY | RESET
  audit events by day   AUDIT#<yyyy-mm-dd> / <iso time>#<id>
  rate-limit windows       RATE#<limit>#<subject hash> / WINDOW#<start>  (kumo.core.rate_limit)
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from kumo.core.config import get_settings

USERS_PARTITION = "USERS"


def user_key(user_id: str) -> str:
    return f"USER#{user_id}"


def email_key(email: str) -> str:
    return f"EMAIL#{email}"


def refresh_key(token_hash: str) -> str:
    return f"REFRESH#{token_hash}"


def family_sort_key(family_id: str) -> str:
    return f"FAMILY#{family_id}"


def one_time_key(token_hash: str) -> str:
    return f"TOKEN#{token_hash}"


def audit_key(day: str) -> str:
    return f"AUDIT#{day}"


class IdentityItem(Model):
    """An item of the identity table: the table and its key, for every model stored there."""

    class Meta:
        table_name = get_settings().identity_table
        region = get_settings().region

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class UserListIndex(GlobalSecondaryIndex["UserModel"]):
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class UserModel(IdentityItem):
    sk = UnicodeAttribute(range_key=True, default="PROFILE")
    gsi1pk = UnicodeAttribute(default=USERS_PARTITION)
    gsi1sk = UnicodeAttribute()
    user_id = UnicodeAttribute()
    email = UnicodeAttribute()
    display_name = UnicodeAttribute()
    # A file of the media context (purpose avatar), checked there when it is set.
    avatar_media_id = UnicodeAttribute(null=True)
    password_hash = UnicodeAttribute()
    role = UnicodeAttribute(default="user")
    active = BooleanAttribute(default=True)
    email_verified = BooleanAttribute(default=False)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    # Raised by a deactivation, a role change or a new password: access tokens carry the
    # epoch they were issued at, and the authorizer refuses older ones (kumo.identity.sessions).
    session_epoch = NumberAttribute(default=0)

    by_created = UserListIndex()


class EmailClaimModel(IdentityItem):
    sk = UnicodeAttribute(range_key=True, default="EMAIL")
    user_id = UnicodeAttribute()


class RefreshTokenModel(IdentityItem):
    sk = UnicodeAttribute(range_key=True, default="REFRESH")
    user_id = UnicodeAttribute()
    family_id = UnicodeAttribute()
    remember = BooleanAttribute(default=False)
    rotated = BooleanAttribute(default=False)
    expires_at = NumberAttribute()


class TokenFamilyModel(IdentityItem):
    family_id = UnicodeAttribute()
    revoked = BooleanAttribute(default=False)
    revoked_reason = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    expires_at = NumberAttribute()


class OneTimeTokenModel(IdentityItem):
    user_id = UnicodeAttribute()
    expires_at = NumberAttribute()


class AuditEventModel(IdentityItem):
    event = UnicodeAttribute()
    at = UnicodeAttribute()
    actor_id = UnicodeAttribute(null=True)
    subject_id = UnicodeAttribute(null=True)
    source_ip = UnicodeAttribute(null=True)
    detail = MapAttribute[str, str](default=dict)
    expires_at = NumberAttribute()


class RateCounterModel(IdentityItem):
    """A rate-limit window of this context's limits (kumo.core.rate_limit, ADR 24):
    RATE#<limit>#<sha256 of subject> / WINDOW#<window start>, removed by TTL."""

    hits = NumberAttribute(default=0)
    expires_at = NumberAttribute()
