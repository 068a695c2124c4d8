"""Orgs: organizations (the tenants), their members and org roles, and e-mail invitations.

Tenant isolation: every org-scoped operation first loads the caller's membership, and a
caller who is not a member gets the same 404 as for an org that does not exist.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from kumo.core import abuse_limits as limits
from kumo.core import clock, dynamo, rate_limit
from kumo.core.config import get_settings
from kumo.core.dynamo import Explain
from kumo.core.errors import Conflict, Forbidden, KumoError, NotFound
from kumo.core.ids import is_id, new_id
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor
from kumo.identity import tokens
from kumo.identity.errors import InvalidToken
from kumo.orgs.errors import AlreadyMember, LastOwner, OrgLimitReached
from kumo.orgs.models import (
    INVITE_LOOKUP,
    INVITE_PREFIX,
    MEMBER_PREFIX,
    META,
    OWNERSHIP,
    InvitationModel,
    InvitationTokenModel,
    MemberEmailModel,
    MembershipModel,
    OrgModel,
    OwnershipModel,
    PendingInvitationModel,
    RateCounterModel,
    invite_sort_key,
    invite_token_key,
    invitee_sort_key,
    member_email_sort_key,
    member_sort_key,
    org_key,
    user_key,
)
from kumo.orgs.schemas import DEFAULT_RETENTION_DAYS, InvitableRole, OrgRole, retention_days

logger = Logger(child=True)

_CHANGED = "The organization changed while this request ran; try again."

ROLE_RANK: dict[str, int] = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}
MAX_OWNED_ORGS = 10
INVITATION_SECONDS = 7 * 24 * 3600
_MAX_USER_ID = 128
_NO_ORG = "No such organization."
_INVALID_INVITATION = "The invitation is unknown, already used, revoked or expired."
# Ingestion asks an org's retention for every message batch: a warm container answers from
# memory for this long, so a retention change reaches new readings within five minutes at
# the cost of one GetItem per org and container every five minutes, not one per message.
RETENTION_CACHE_SECONDS = 300.0
_retention_cache: dict[str, tuple[float, int]] = {}


# --- memberships and roles ----------------------------------------------------------------


def _plausible_user_id(user_id: str) -> bool:
    # Refused before DynamoDB sees it: an oversized key is a 500 there, not a 404.
    return 0 < len(user_id) <= _MAX_USER_ID


def _find_member(org_id: str, user_id: str) -> MembershipModel | None:
    if not is_id(org_id) or not _plausible_user_id(user_id):
        return None
    return dynamo.get_or_none(MembershipModel, org_key(org_id), member_sort_key(user_id))


def get_membership(org_id: str, user_id: str) -> MembershipModel:
    """The user's membership; a non-member learns nothing, not even that the org exists."""
    membership = _find_member(org_id, user_id)
    if membership is None:
        raise NotFound(_NO_ORG)
    return membership


def require_org_role(org_id: str, user_id: str, minimum_role: OrgRole) -> MembershipModel:
    membership = get_membership(org_id, user_id)
    if ROLE_RANK[membership.role] < ROLE_RANK[minimum_role]:
        raise Forbidden(f"This needs the {minimum_role} role or higher in this organization.")
    return membership


def _get_org(org_id: str) -> OrgModel:
    org = dynamo.get_or_none(OrgModel, org_key(org_id), META)
    if org is None:
        raise NotFound(_NO_ORG)
    return org


def _owned_count(user_id: str) -> int:
    try:
        return int(OwnershipModel.get(user_key(user_id), OWNERSHIP).owned_count)
    except DoesNotExist:
        return 0


def _new_membership(org_id: str, user_id: str, email: str, role: str) -> MembershipModel:
    return MembershipModel(
        pk=org_key(org_id),
        sk=member_sort_key(user_id),
        gsi1pk=user_key(user_id),
        gsi1sk=org_key(org_id),
        org_id=org_id,
        user_id=user_id,
        email=email.strip().lower(),
        role=role,
        joined_at=clock.utc_iso(),
    )


def _write_membership(transaction: TransactWrite, membership: MembershipModel) -> None:
    transaction.save(membership, condition=MembershipModel.pk.does_not_exist())
    if membership.email:
        # One member per address: what lets an invitation check "already a member" by e-mail.
        claim = MemberEmailModel(
            pk=membership.pk,
            sk=member_email_sort_key(membership.email),
            user_id=membership.user_id,
        )
        transaction.save(claim, condition=MemberEmailModel.pk.does_not_exist())


def _delete_membership(transaction: TransactWrite, membership: MembershipModel) -> None:
    # Conditional on the role we read, so the owner counters cannot drift under a race.
    transaction.delete(membership, condition=MembershipModel.role == membership.role)
    if membership.email:
        transaction.delete(
            MemberEmailModel(pk=membership.pk, sk=member_email_sort_key(membership.email))
        )


def _change_ownership(
    transaction: TransactWrite, org_id: str, user_id: str, old: str | None, new: str | None
) -> None:
    """Keep the org's owner count and the user's owned-org count in step with the roles."""
    if (old == "owner") == (new == "owner"):
        return
    org = OrgModel(pk=org_key(org_id))
    owned = OwnershipModel(pk=user_key(user_id))
    if new == "owner":
        transaction.update(
            org, actions=[OrgModel.owner_count.add(1)], condition=OrgModel.pk.exists()
        )
        transaction.update(
            owned,
            actions=[OwnershipModel.owned_count.add(1)],
            condition=OwnershipModel.owned_count.does_not_exist()
            | (OwnershipModel.owned_count < MAX_OWNED_ORGS),
        )
    else:
        transaction.update(
            org, actions=[OrgModel.owner_count.add(-1)], condition=OrgModel.owner_count > 1
        )
        transaction.update(owned, actions=[OwnershipModel.owned_count.add(-1)])


def _explain_ownership(org_id: str, user_id: str, old: str | None, new: str | None) -> Explain:
    def explain() -> KumoError | None:
        if old == "owner" and new != "owner" and _get_org(org_id).owner_count <= 1:
            return LastOwner(
                "An organization needs at least one owner: make another member owner first."
            )
        if new == "owner" and old != "owner" and _owned_count(user_id) >= MAX_OWNED_ORGS:
            return OrgLimitReached(
                f"A user can own at most {MAX_OWNED_ORGS} organizations, and this one does."
            )
        if old is None and _find_member(org_id, user_id) is not None:
            return AlreadyMember("This user is already a member of the organization.")
        return None

    return explain


def _add_member(org_id: str, user_id: str, email: str, role: str) -> MembershipModel:
    membership = _new_membership(org_id, user_id, email, role)
    with dynamo.transaction(
        _explain_ownership(org_id, user_id, None, role), changed=_CHANGED
    ) as transaction:
        _write_membership(transaction, membership)
        _change_ownership(transaction, org_id, user_id, None, role)
    return membership


def _remove(membership: MembershipModel) -> None:
    org_id, user_id = membership.org_id, membership.user_id
    with dynamo.transaction(
        _explain_ownership(org_id, user_id, membership.role, None), changed=_CHANGED
    ) as transaction:
        _delete_membership(transaction, membership)
        _change_ownership(transaction, org_id, user_id, membership.role, None)


def _check_may_manage(
    actor: MembershipModel, target: MembershipModel, new_role: str | None
) -> None:
    """Admins manage admins, members and viewers; only owners touch ownership."""
    if actor.role == "owner":
        return
    if target.role == "owner":
        raise Forbidden("Only an owner can change or remove an owner.")
    if new_role == "owner":
        raise Forbidden("Only an owner can grant the owner role.")


def _get_member(org_id: str, user_id: str) -> MembershipModel:
    membership = _find_member(org_id, user_id)
    if membership is None:
        raise NotFound("No such member in this organization.")
    return membership


def change_member_role(
    *, org_id: str, actor_id: str, user_id: str, role: OrgRole
) -> MembershipModel:
    actor = require_org_role(org_id, actor_id, "admin")
    target = _get_member(org_id, user_id)
    _check_may_manage(actor, target, role)
    old = target.role
    if old == role:
        return target
    with dynamo.transaction(
        _explain_ownership(org_id, user_id, old, role), changed=_CHANGED
    ) as transaction:
        transaction.update(
            target, actions=[MembershipModel.role.set(role)], condition=MembershipModel.role == old
        )
        _change_ownership(transaction, org_id, user_id, old, role)
    target.role = role
    logger.info("member role changed", org_id=org_id, user_id=user_id, old=old, new=role)
    return target


def remove_member(*, org_id: str, actor_id: str, user_id: str) -> None:
    if user_id == actor_id:
        # Removing yourself is leaving, which every role may do.
        leave_org(org_id=org_id, user_id=actor_id)
        return
    actor = require_org_role(org_id, actor_id, "admin")
    target = _get_member(org_id, user_id)
    _check_may_manage(actor, target, None)
    _remove(target)
    logger.info("member removed", org_id=org_id, user_id=user_id, actor_id=actor_id)


def leave_org(*, org_id: str, user_id: str) -> None:
    _remove(get_membership(org_id, user_id))
    logger.info("member left", org_id=org_id, user_id=user_id)


def list_members(
    *, org_id: str, user_id: str, limit: int | None, cursor: str | None
) -> tuple[list[MembershipModel], str | None]:
    get_membership(org_id, user_id)
    results = MembershipModel.query(
        org_key(org_id),
        MembershipModel.sk.startswith(MEMBER_PREFIX),
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(cursor, partition=("pk", org_key(org_id))),
    )
    members = list(results)
    return members, encode_cursor(results.last_evaluated_key)


def member_addresses(org_id: str, roles: frozenset[str]) -> list[str]:
    """The e-mail addresses of the org's members holding one of `roles`, for notices sent on
    the org's behalf (alerts): no caller is checked, so never answer a user's request with it."""
    return sorted(
        membership.email
        for membership in MembershipModel.query(
            org_key(org_id), MembershipModel.sk.startswith(MEMBER_PREFIX)
        )
        if membership.role in roles and membership.email
    )


def org_name(org_id: str) -> str | None:
    """The org's name for notices sent on its behalf; None when it no longer exists."""
    try:
        return str(OrgModel.get(org_key(org_id), META).name)
    except DoesNotExist:
        return None


# --- organizations ------------------------------------------------------------------------


def create_org(*, name: str, owner_id: str, owner_email: str) -> tuple[OrgModel, MembershipModel]:
    org_id = new_id()
    org = OrgModel(
        pk=org_key(org_id),
        org_id=org_id,
        name=name,
        created_by=owner_id,
        created_at=clock.utc_iso(),
        owner_count=1,
    )
    membership = _new_membership(org_id, owner_id, owner_email, "owner")
    owned = OwnershipModel(pk=user_key(owner_id))

    def explain() -> KumoError | None:
        if _owned_count(owner_id) >= MAX_OWNED_ORGS:
            return OrgLimitReached(
                f"You already own {MAX_OWNED_ORGS} organizations, the most one user can own."
            )
        return None

    with dynamo.transaction(explain, changed=_CHANGED) as transaction:
        transaction.save(org, condition=OrgModel.pk.does_not_exist())
        _write_membership(transaction, membership)
        # Not _change_ownership: the org item is being created in this same transaction.
        transaction.update(
            owned,
            actions=[OwnershipModel.owned_count.add(1)],
            condition=OwnershipModel.owned_count.does_not_exist()
            | (OwnershipModel.owned_count < MAX_OWNED_ORGS),
        )
    logger.info("org created", org_id=org_id, owner_id=owner_id)
    return org, membership


def get_org(*, org_id: str, user_id: str) -> tuple[OrgModel, MembershipModel]:
    membership = get_membership(org_id, user_id)
    return _get_org(org_id), membership


def update_org(
    *, org_id: str, user_id: str, name: str | None, telemetry_retention_days: int | None
) -> tuple[OrgModel, MembershipModel]:
    """Rename the org or change its raw telemetry retention (owners and admins). A new
    retention applies to readings stored from then on: stored ones keep their expiry."""
    membership = require_org_role(org_id, user_id, "admin")
    org = _get_org(org_id)
    actions: list[Action] = []
    if name is not None:
        actions.append(OrgModel.name.set(name))
    if telemetry_retention_days is not None:
        actions.append(OrgModel.telemetry_retention_days.set(telemetry_retention_days))
    if not actions:  # nothing to change, as with every PATCH: the org as it is
        return org, membership
    # Conditional on existence: an update of a deleted org must not recreate a bare item.
    try:
        org.update(actions=actions, condition=OrgModel.pk.exists())
    except UpdateError as error:
        if not dynamo.condition_failed(error):
            raise
        raise NotFound(_NO_ORG) from error
    _retention_cache.pop(org_id, None)
    logger.info(
        "org updated",
        org_id=org_id,
        user_id=user_id,
        renamed=name is not None,
        telemetry_retention_days=telemetry_retention_days,
    )
    return org, membership


def telemetry_retention_days(org_id: str) -> int:
    """Days the org's raw telemetry is kept, for the devices context's ingestion: answered
    from a per-container cache for RETENTION_CACHE_SECONDS. An org that no longer exists
    gets the default (its devices are on their way out too)."""
    moment = clock.now()
    cached = _retention_cache.get(org_id)
    if cached is not None and moment - cached[0] < RETENTION_CACHE_SECONDS:
        return cached[1]
    try:
        org = OrgModel.get(
            org_key(org_id), META, attributes_to_get=["pk", "sk", "telemetry_retention_days"]
        )
        days = retention_days(org)
    except DoesNotExist:
        days = DEFAULT_RETENTION_DAYS
    _retention_cache[org_id] = (moment, days)
    return days


def _orgs_of(memberships: list[MembershipModel]) -> list[tuple[OrgModel, MembershipModel]]:
    # One BatchGetItem by key for the page, rather than copying org names into memberships.
    orgs = {
        org.org_id: org
        for org in OrgModel.batch_get([(org_key(m.org_id), META) for m in memberships])
    }
    return [(orgs[m.org_id], m) for m in memberships if m.org_id in orgs]


def list_my_orgs(
    *, user_id: str, limit: int | None, cursor: str | None
) -> tuple[list[tuple[OrgModel, MembershipModel]], str | None]:
    results = MembershipModel.by_user.query(
        user_key(user_id),
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(cursor, partition=("gsi1pk", user_key(user_id))),
    )
    memberships = list(results)
    return _orgs_of(memberships), encode_cursor(results.last_evaluated_key)


def _owned_org_named(owner_id: str, name: str) -> OrgModel | None:
    owned = list(
        MembershipModel.by_user.query(
            user_key(owner_id), filter_condition=MembershipModel.role == "owner"
        )
    )
    return next((org for org, _ in _orgs_of(owned) if org.name == name), None)


def ensure_demo_org(
    *, name: str, owner_id: str, owner_email: str, members: list[tuple[str, str, str]]
) -> OrgModel:
    """Idempotent seeding: reuse the owner's org of that name, add the members it lacks."""
    org = _owned_org_named(owner_id, name)
    if org is None:
        org, _ = create_org(name=name, owner_id=owner_id, owner_email=owner_email)
    for user_id, email, role in members:
        if role not in ROLE_RANK:
            raise ValueError(f"unknown org role {role}")
        if _find_member(org.org_id, user_id) is None:
            _add_member(org.org_id, user_id, email, role)
    return org


# --- invitations --------------------------------------------------------------------------


def _pending_invitations_for(org_id: str, email: str) -> list[InvitationModel]:
    return list(
        InvitationModel.query(
            org_key(org_id),
            InvitationModel.sk.startswith(INVITE_PREFIX),
            filter_condition=InvitationModel.email == email,
        )
    )


def _delete_invitation(transaction: TransactWrite, invitation: InvitationModel) -> None:
    transaction.delete(invitation)
    transaction.delete(InvitationTokenModel(pk=invite_token_key(invitation.token_hash)))


def _forget_pending(transaction: TransactWrite, invitation: InvitationModel) -> None:
    # Only while it still names this invitation: a newer one keeps its pointer.
    transaction.delete(
        PendingInvitationModel(
            pk=org_key(invitation.org_id), sk=invitee_sort_key(invitation.email)
        ),
        condition=PendingInvitationModel.pk.does_not_exist()
        | (PendingInvitationModel.invitation_id == invitation.invitation_id),
    )


# Concurrent invitations to one address each lose at most once to every other one.
_INVITE_ATTEMPTS = 5


def invite_member(
    *, org_id: str, actor_id: str, actor_email: str, email: str, role: InvitableRole
) -> InvitationModel:
    """Invite an address; inviting it again replaces the pending invitation and its link.
    Within the allowance per invited address and per inviter (ADR 24): a refused or failed
    invitation costs none."""
    require_org_role(org_id, actor_id, "admin")
    org = _get_org(org_id)
    spent = rate_limit.spend_all(
        RateCounterModel,
        [(limits.INVITE_PER_ADDRESS, email), (limits.INVITE_PER_INVITER, actor_id)],
    )
    try:
        invitation, raw, replaced = _replace_invitation(org_id, actor_id, email, role)
    except KumoError:
        rate_limit.refund_all(spent)
        raise

    # Imported here: only this route sends mail, the others should not pay for its import.
    from kumo.tasks import service as tasks

    tasks.enqueue_email(
        to=email,
        template="org_invitation",
        params={
            "inviter": actor_email or "A Kumo user",
            "org_name": org.name,
            "role": role,
            "link": f"{get_settings().app_url}/orgs/accept?token={raw}",
            "token": raw,
        },
    )
    logger.info(
        "invitation sent", org_id=org_id, invitation_id=invitation.invitation_id, replaced=replaced
    )
    return invitation


def _replace_invitation(
    org_id: str, actor_id: str, email: str, role: InvitableRole
) -> tuple[InvitationModel, str, int]:
    """Store a new invitation in place of the address's pending one: the invitation, its
    token item and the address's pointer in one transaction, conditional on the pointer
    still naming the invitation read (or none). A concurrent invitation that won first is
    read again and replaced in turn. Answers the invitation, its raw token and how many
    it replaced."""
    raw = tokens.new_opaque_token()
    token_hash = tokens.hash_token(raw)
    invitation_id = new_id()
    expires_at = int(clock.now()) + INVITATION_SECONDS
    invitation = InvitationModel(
        pk=org_key(org_id),
        sk=invite_sort_key(invitation_id),
        invitation_id=invitation_id,
        org_id=org_id,
        email=email,
        role=role,
        invited_by=actor_id,
        token_hash=token_hash,
        created_at=clock.utc_iso(),
        expires_at=expires_at,
    )
    token = InvitationTokenModel(
        pk=invite_token_key(token_hash),
        org_id=org_id,
        invitation_id=invitation_id,
        expires_at=expires_at,
    )
    pending = PendingInvitationModel(
        pk=org_key(org_id),
        sk=invitee_sort_key(email),
        invitation_id=invitation_id,
        token_hash=token_hash,
        expires_at=expires_at,
    )

    def explain() -> KumoError | None:
        try:
            MemberEmailModel.get(org_key(org_id), member_email_sort_key(email))
        except DoesNotExist:
            return None
        return AlreadyMember("This address already belongs to a member of the organization.")

    for attempt in range(_INVITE_ATTEMPTS):
        current = dynamo.get_or_none(
            PendingInvitationModel, org_key(org_id), invitee_sort_key(email), consistent_read=True
        )
        # The query also finds invitations stored before the pointer existed.
        previous = {old.invitation_id: old for old in _pending_invitations_for(org_id, email)}
        if current is not None:
            previous.pop(current.invitation_id, None)
        try:
            with dynamo.transaction(explain, changed=_CHANGED) as transaction:
                # Checked inside the transaction, so an invitation accepted meanwhile is seen.
                transaction.condition_check(
                    MemberEmailModel,
                    org_key(org_id),
                    member_email_sort_key(email),
                    condition=MemberEmailModel.pk.does_not_exist(),
                )
                transaction.save(invitation, condition=InvitationModel.pk.does_not_exist())
                transaction.save(token, condition=InvitationTokenModel.pk.does_not_exist())
                transaction.save(
                    pending,
                    condition=PendingInvitationModel.pk.does_not_exist()
                    if current is None
                    else PendingInvitationModel.invitation_id == current.invitation_id,
                )
                if current is not None:
                    transaction.delete(
                        InvitationModel(
                            pk=org_key(org_id), sk=invite_sort_key(current.invitation_id)
                        )
                    )
                    transaction.delete(
                        InvitationTokenModel(pk=invite_token_key(current.token_hash))
                    )
                for old in previous.values():
                    _delete_invitation(transaction, old)
        except AlreadyMember:
            raise
        except Conflict:
            # Another invitation to the address won the pointer: replace that one instead.
            if attempt == _INVITE_ATTEMPTS - 1:
                raise
            continue
        return invitation, raw, len(previous) + (current is not None)
    raise Conflict(_CHANGED)  # not reached: the last attempt raises


def list_invitations(
    *, org_id: str, actor_id: str, limit: int | None, cursor: str | None
) -> tuple[list[InvitationModel], str | None]:
    require_org_role(org_id, actor_id, "admin")
    results = InvitationModel.query(
        org_key(org_id),
        InvitationModel.sk.startswith(INVITE_PREFIX),
        # TTL deletes lazily (within days), so an expired invitation may still be stored.
        filter_condition=InvitationModel.expires_at > int(clock.now()),
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(cursor, partition=("pk", org_key(org_id))),
    )
    invitations = list(results)
    return invitations, encode_cursor(results.last_evaluated_key)


def revoke_invitation(*, org_id: str, actor_id: str, invitation_id: str) -> None:
    require_org_role(org_id, actor_id, "admin")
    if not is_id(invitation_id):
        raise NotFound("No such invitation.")
    invitation = dynamo.get_or_none(
        InvitationModel, org_key(org_id), invite_sort_key(invitation_id)
    )
    if invitation is None:
        raise NotFound("No such invitation.")
    with dynamo.transaction(lambda: None, changed=_CHANGED) as transaction:
        transaction.delete(invitation, condition=InvitationModel.pk.exists())
        transaction.delete(InvitationTokenModel(pk=invite_token_key(invitation.token_hash)))
        _forget_pending(transaction, invitation)
    logger.info("invitation revoked", org_id=org_id, invitation_id=invitation_id)


def accept_invitation(*, raw_token: str, user_id: str, email: str) -> MembershipModel:
    """Join the org with the invited role; only the invited address may spend the token."""
    try:
        token = InvitationTokenModel.get(
            invite_token_key(tokens.hash_token(raw_token)), INVITE_LOOKUP
        )
        invitation = InvitationModel.get(
            org_key(token.org_id), invite_sort_key(token.invitation_id)
        )
    except DoesNotExist as error:
        raise InvalidToken(_INVALID_INVITATION) from error
    if token.expires_at <= clock.now():
        raise InvalidToken(_INVALID_INVITATION)
    if invitation.email != email.strip().lower():
        # The address stays out of the detail: the token alone must not reveal it.
        raise Forbidden("This invitation is for another e-mail address; sign in with that one.")
    membership = _new_membership(invitation.org_id, user_id, email, invitation.role)

    def explain() -> KumoError | None:
        if _find_member(invitation.org_id, user_id) is not None:
            return AlreadyMember("You are already a member of this organization.")
        return InvalidToken(_INVALID_INVITATION)  # spent or revoked while this request ran

    with dynamo.transaction(explain, changed=_CHANGED) as transaction:
        _write_membership(transaction, membership)
        # The conditional deletes make the token single use under concurrency.
        transaction.delete(invitation, condition=InvitationModel.pk.exists())
        transaction.delete(token, condition=InvitationTokenModel.pk.exists())
        _forget_pending(transaction, invitation)
    logger.info("invitation accepted", org_id=invitation.org_id, user_id=user_id)
    return membership
