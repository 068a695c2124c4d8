"""Orgs table items. Key building for this context lives here and nowhere else.

Access patterns (all GetItem or Query):
  org by id                ORG#<id> / META            (owner_count guards the last owner)
  one member               ORG#<id> / MEMBER#<user id>
  members of an org        ORG#<id> / begins_with MEMBER#
  member by e-mail         ORG#<id> / EMAIL#<email>  ->  user id (answers "already a member?")
  a user's orgs            gsi1: USER#<user id> / ORG#<org id>
  orgs a user owns         USER#<user id> / OWNERSHIP (a counter: the plan limit)
  invitation               ORG#<id> / INVITE#<invitation id>
  pending invitations      ORG#<id> / begins_with INVITE#
  invitation by token      INVITETOKEN#<sha256> / INVITE
  pending invitation of an address  ORG#<id> / INVITEE#<email>  ->  invitation id (one per address)
  rate-limit windows       RATE#<limit>#<subject hash> / WINDOW#<start>  (kumo.core.rate_limit)
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from kumo.core.config import get_settings

META = "META"
OWNERSHIP = "OWNERSHIP"
INVITE_LOOKUP = "INVITE"
MEMBER_PREFIX = "MEMBER#"
INVITE_PREFIX = "INVITE#"


def org_key(org_id: str) -> str:
    return f"ORG#{org_id}"


def member_sort_key(user_id: str) -> str:
    return f"{MEMBER_PREFIX}{user_id}"


def member_email_sort_key(email: str) -> str:
    return f"EMAIL#{email}"


def user_key(user_id: str) -> str:
    return f"USER#{user_id}"


def invite_sort_key(invitation_id: str) -> str:
    return f"{INVITE_PREFIX}{invitation_id}"


def invitee_sort_key(email: str) -> str:
    return f"INVITEE#{email}"


def invite_token_key(token_hash: str) -> str:
    return f"INVITETOKEN#{token_hash}"


class OrgsItem(Model):
    """An item of the orgs table: the table and its key, for every model stored there."""

    class Meta:
        table_name = get_settings().orgs_table
        region = get_settings().region

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class OrgModel(OrgsItem):
    sk = UnicodeAttribute(range_key=True, default=META)
    org_id = UnicodeAttribute()
    name = UnicodeAttribute()
    created_by = UnicodeAttribute()
    created_at = UnicodeAttribute()
    # Changed in the same transaction as every owner membership, so "the last owner" is a
    # condition DynamoDB checks, not a count two concurrent requests could both read.
    owner_count = NumberAttribute(default=0)
    # Days raw telemetry is kept before it expires (and is archived); absent on orgs created
    # before the setting existed, which keep the default (kumo.orgs.service).
    telemetry_retention_days = NumberAttribute(null=True)


class UserOrgsIndex(GlobalSecondaryIndex["MembershipModel"]):
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class MembershipModel(OrgsItem):
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    org_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    email = UnicodeAttribute()
    role = UnicodeAttribute()
    joined_at = UnicodeAttribute()

    by_user = UserOrgsIndex()


class MemberEmailModel(OrgsItem):
    user_id = UnicodeAttribute()


class OwnershipModel(OrgsItem):
    sk = UnicodeAttribute(range_key=True, default=OWNERSHIP)
    owned_count = NumberAttribute(default=0)


class InvitationModel(OrgsItem):
    invitation_id = UnicodeAttribute()
    org_id = UnicodeAttribute()
    email = UnicodeAttribute()
    role = UnicodeAttribute()
    invited_by = UnicodeAttribute()
    token_hash = UnicodeAttribute()
    created_at = UnicodeAttribute()
    expires_at = NumberAttribute()


class PendingInvitationModel(OrgsItem):
    """Which invitation of an org is pending for an address: every invitation swaps it under
    a condition on the one it replaces, so concurrent invitations to one address serialise
    and leave exactly one pending (ADR 7, 24)."""

    invitation_id = UnicodeAttribute()
    token_hash = UnicodeAttribute()
    expires_at = NumberAttribute()


class InvitationTokenModel(OrgsItem):
    sk = UnicodeAttribute(range_key=True, default=INVITE_LOOKUP)
    org_id = UnicodeAttribute()
    invitation_id = UnicodeAttribute()
    expires_at = NumberAttribute()


class RateCounterModel(OrgsItem):
    """A rate-limit window of this context's limits (kumo.core.rate_limit, ADR 24):
    RATE#<limit>#<sha256 of subject> / WINDOW#<window start>, removed by TTL."""

    hits = NumberAttribute(default=0)
    expires_at = NumberAttribute()
