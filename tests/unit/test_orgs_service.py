"""kumo.orgs.service: organizations, memberships and roles, invitations, demo seeding."""

from __future__ import annotations

import json
from dataclasses import dataclass

import boto3
import pytest
from kumo.core import clock
from kumo.core.errors import BadRequest, Conflict, Forbidden, NotFound
from kumo.core.ids import new_id
from kumo.identity.errors import InvalidToken
from kumo.orgs import service
from kumo.orgs.errors import AlreadyMember, LastOwner, OrgLimitReached
from kumo.orgs.models import OrgModel
from kumo.tasks.models import EmailTaskModel, task_key

from tests.support import factories
from tests.unit.conftest import QUEUE_URL

pytestmark = pytest.mark.usefixtures("aws")


@dataclass(frozen=True)
class User:
    user_id: str
    email: str


def new_user(label: str = "user") -> User:
    user_id = new_id()
    return User(user_id=user_id, email=f"{label}-{user_id.lower()}@example.com")


def new_org(owner: User, name: str = "Acme") -> str:
    return factories.new_org(owner.user_id, owner.email, name)


def add_member(org_id: str, user: User, role: str) -> None:
    factories.add_member(org_id, user.user_id, user.email, role)


def invite(org_id: str, actor: User, email: str, role: str = "member") -> str:
    service.invite_member(
        org_id=org_id, actor_id=actor.user_id, actor_email=actor.email, email=email, role=role
    )
    return mailed_tasks(email)[-1].params["token"]


def mailed_tasks(recipient: str) -> list[EmailTaskModel]:
    """The e-mail tasks queued since the last call (read messages are deleted)."""
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=QUEUE_URL, MaxNumberOfMessages=10).get("Messages", [])
    tasks = []
    for message in messages:
        sqs.delete_message(QueueUrl=QUEUE_URL, ReceiptHandle=message["ReceiptHandle"])
        task = EmailTaskModel.get(task_key(json.loads(message["Body"])["task_id"]), "TASK")
        if task.recipient == recipient:
            tasks.append(task)
    return tasks


def role_of(org_id: str, user: User) -> str:
    return service.get_membership(org_id, user.user_id).role


# --- organizations ------------------------------------------------------------------------


def test_create_org_makes_creator_owner():
    # Given a signed-in user
    owner = new_user("owner")

    # When they create an organization
    org, membership = service.create_org(
        name="Acme", owner_id=owner.user_id, owner_email=owner.email
    )

    # Then they are its owner, and the org counts one owner
    assert membership.role == "owner"
    assert role_of(org.org_id, owner) == "owner"
    assert OrgModel.get(f"ORG#{org.org_id}", "META").owner_count == 1


def test_create_org_refuses_the_eleventh_owned_org():
    # Given a user who already owns the most organizations one user can own
    owner = new_user("owner")
    for number in range(service.MAX_OWNED_ORGS):
        new_org(owner, name=f"Org {number}")

    # When they create one more
    # Then the plan limit refuses it
    with pytest.raises(OrgLimitReached, match="already own"):
        new_org(owner, name="One too many")


def test_get_membership_hides_org_from_non_member():
    # Given an org and a user who is not in it
    org_id = new_org(new_user("owner"))
    stranger = new_user("stranger")

    # When the stranger's membership is looked up
    # Then the org looks as if it did not exist
    with pytest.raises(NotFound, match="No such organization"):
        service.get_membership(org_id, stranger.user_id)


def test_get_membership_treats_malformed_org_id_as_unknown():
    # Given an org id that no org could have
    user = new_user()

    # When it is looked up
    # Then it is simply not found (DynamoDB never sees the odd key)
    with pytest.raises(NotFound):
        service.get_membership("x" * 3000, user.user_id)


def test_require_org_role_refuses_lower_role():
    # Given a viewer of an org
    owner, viewer = new_user("owner"), new_user("viewer")
    org_id = new_org(owner)
    add_member(org_id, viewer, "viewer")

    # When the viewer needs the member role
    # Then it is refused
    with pytest.raises(Forbidden, match="member role"):
        service.require_org_role(org_id, viewer.user_id, "member")


def test_require_org_role_accepts_higher_role():
    # Given the owner of an org
    owner = new_user("owner")
    org_id = new_org(owner)

    # When the owner needs the admin role
    membership = service.require_org_role(org_id, owner.user_id, "admin")

    # Then the owner role is enough
    assert membership.role == "owner"


def test_list_my_orgs_pages_with_cursor():
    # Given a user in three orgs
    user = new_user()
    created = {new_org(user, name=f"Org {n}") for n in range(3)}

    # When listing two per page
    first, cursor = service.list_my_orgs(user_id=user.user_id, limit=2, cursor=None)
    second, _ = service.list_my_orgs(user_id=user.user_id, limit=2, cursor=cursor)

    # Then both pages together hold every org once, each with the user's role
    listed = [org.org_id for org, _ in first + second]
    assert sorted(listed) == sorted(created)
    assert {membership.role for _, membership in first + second} == {"owner"}


def test_list_my_orgs_refuses_cursor_from_another_users_list():
    # Given a cursor from one user's list
    alice, bob = new_user("alice"), new_user("bob")
    for n in range(2):
        new_org(alice, name=f"Alice {n}")
    new_org(bob)
    _, cursor = service.list_my_orgs(user_id=alice.user_id, limit=1, cursor=None)

    # When another user pages with it
    # Then it is refused as a bad request, not a server error
    with pytest.raises(BadRequest, match="another list"):
        service.list_my_orgs(user_id=bob.user_id, limit=1, cursor=cursor)


def test_list_members_pages_through_every_member():
    # Given an org with an owner and two members
    owner = new_user("owner")
    org_id = new_org(owner)
    others = [new_user("m1"), new_user("m2")]
    for user in others:
        add_member(org_id, user, "member")

    # When listing two per page
    first, cursor = service.list_members(org_id=org_id, user_id=owner.user_id, limit=2, cursor=None)
    second, _ = service.list_members(org_id=org_id, user_id=owner.user_id, limit=2, cursor=cursor)

    # Then every member appears once
    listed = sorted(m.user_id for m in first + second)
    assert listed == sorted([owner.user_id, *(u.user_id for u in others)])


# --- invitations --------------------------------------------------------------------------


def test_invite_member_mails_accept_link_with_token():
    # Given an org owner
    owner = new_user("owner")
    org_id = new_org(owner, name="Acme")
    invitee = new_user("invitee")

    # When the owner invites an address
    service.invite_member(
        org_id=org_id,
        actor_id=owner.user_id,
        actor_email=owner.email,
        email=invitee.email,
        role="admin",
    )

    # Then an org_invitation e-mail with the accept link is queued for that address
    (task,) = mailed_tasks(invitee.email)
    assert task.template == "org_invitation"
    params = task.params
    assert params["link"] == f"https://app.kumo.test/orgs/accept?token={params['token']}"
    assert (params["org_name"], params["role"], params["inviter"]) == ("Acme", "admin", owner.email)


def test_invite_member_stores_invitation_expiring_in_seven_days(monkeypatch):
    # Given a frozen clock and an org owner
    now = clock.now()
    monkeypatch.setattr(clock, "now", lambda: now)
    owner = new_user("owner")
    org_id = new_org(owner)

    # When the owner invites an address
    invitation = service.invite_member(
        org_id=org_id,
        actor_id=owner.user_id,
        actor_email=owner.email,
        email=new_user().email,
        role="member",
    )

    # Then it expires seven days later
    assert invitation.expires_at == int(now) + 7 * 24 * 3600


def test_invite_member_refuses_existing_member():
    # Given an org with a member
    owner, member = new_user("owner"), new_user("member")
    org_id = new_org(owner)
    add_member(org_id, member, "member")

    # When the owner invites the member's address
    # Then it is a conflict
    with pytest.raises(AlreadyMember):
        invite(org_id, owner, member.email)


def test_invite_member_refuses_member_role():
    # Given a plain member of an org
    owner, member = new_user("owner"), new_user("member")
    org_id = new_org(owner)
    add_member(org_id, member, "member")

    # When the member invites someone
    # Then it is forbidden
    with pytest.raises(Forbidden):
        invite(org_id, member, new_user().email)


def test_invite_member_again_replaces_previous_invitation():
    # Given a pending invitation
    owner, invitee = new_user("owner"), new_user("invitee")
    org_id = new_org(owner)
    old_token = invite(org_id, owner, invitee.email)

    # When the same address is invited again
    invite(org_id, owner, invitee.email, role="viewer")

    # Then only the new invitation is pending and the old link no longer works
    pending, _ = service.list_invitations(
        org_id=org_id, actor_id=owner.user_id, limit=None, cursor=None
    )
    assert [(i.email, i.role) for i in pending] == [(invitee.email, "viewer")]
    with pytest.raises(InvalidToken):
        service.accept_invitation(raw_token=old_token, user_id=invitee.user_id, email=invitee.email)


def test_list_invitations_hides_expired(monkeypatch):
    # Given an invitation eight days old (TTL has not removed it yet)
    owner = new_user("owner")
    org_id = new_org(owner)
    invite(org_id, owner, new_user().email)
    later = clock.now() + 8 * 24 * 3600
    monkeypatch.setattr(clock, "now", lambda: later)

    # When listing pending invitations
    pending, _ = service.list_invitations(
        org_id=org_id, actor_id=owner.user_id, limit=None, cursor=None
    )

    # Then the expired one is not listed
    assert pending == []


def test_accept_invitation_adds_member_with_invited_role():
    # Given an invitation to join as admin
    owner, invitee = new_user("owner"), new_user("invitee")
    org_id = new_org(owner)
    token = invite(org_id, owner, invitee.email, role="admin")

    # When the invited user accepts it
    membership = service.accept_invitation(
        raw_token=token, user_id=invitee.user_id, email=invitee.email
    )

    # Then they are an admin of the org
    assert (membership.org_id, membership.role) == (org_id, "admin")
    assert role_of(org_id, invitee) == "admin"


def test_accept_invitation_refuses_another_address():
    # Given an invitation for one address
    owner, invitee, other = new_user("owner"), new_user("invitee"), new_user("other")
    org_id = new_org(owner)
    token = invite(org_id, owner, invitee.email)

    # When a user with another address presents the token
    # Then it is forbidden and the invitation stays usable
    with pytest.raises(Forbidden):
        service.accept_invitation(raw_token=token, user_id=other.user_id, email=other.email)
    service.accept_invitation(raw_token=token, user_id=invitee.user_id, email=invitee.email)


def test_accept_invitation_refuses_expired_token(monkeypatch):
    # Given an invitation whose seven days have passed
    owner, invitee = new_user("owner"), new_user("invitee")
    org_id = new_org(owner)
    token = invite(org_id, owner, invitee.email)
    later = clock.now() + service.INVITATION_SECONDS + 1
    monkeypatch.setattr(clock, "now", lambda: later)

    # When it is accepted
    # Then the token is invalid
    with pytest.raises(InvalidToken):
        service.accept_invitation(raw_token=token, user_id=invitee.user_id, email=invitee.email)


def test_accept_invitation_token_works_once():
    # Given an accepted invitation
    owner, invitee = new_user("owner"), new_user("invitee")
    org_id = new_org(owner)
    token = invite(org_id, owner, invitee.email)
    service.accept_invitation(raw_token=token, user_id=invitee.user_id, email=invitee.email)

    # When the same token is presented again
    # Then it is invalid
    with pytest.raises(InvalidToken):
        service.accept_invitation(raw_token=token, user_id=invitee.user_id, email=invitee.email)


def test_accept_invitation_refuses_revoked_invitation():
    # Given an invitation that was revoked
    owner, invitee = new_user("owner"), new_user("invitee")
    org_id = new_org(owner)
    token = invite(org_id, owner, invitee.email)
    (invitation,), _ = service.list_invitations(
        org_id=org_id, actor_id=owner.user_id, limit=None, cursor=None
    )
    service.revoke_invitation(
        org_id=org_id, actor_id=owner.user_id, invitation_id=invitation.invitation_id
    )

    # When its token is presented
    # Then it is invalid
    with pytest.raises(InvalidToken):
        service.accept_invitation(raw_token=token, user_id=invitee.user_id, email=invitee.email)


def test_revoke_invitation_unknown_id_is_not_found():
    # Given an org owner
    owner = new_user("owner")
    org_id = new_org(owner)

    # When revoking an invitation that does not exist
    # Then it is not found
    with pytest.raises(NotFound, match="invitation"):
        service.revoke_invitation(org_id=org_id, actor_id=owner.user_id, invitation_id=new_id())


# --- roles --------------------------------------------------------------------------------


def test_change_member_role_refuses_demoting_last_owner():
    # Given an org with a single owner
    owner = new_user("owner")
    org_id = new_org(owner)

    # When the owner demotes themself
    # Then the org would lose its last owner, so it is refused
    with pytest.raises(LastOwner):
        service.change_member_role(
            org_id=org_id, actor_id=owner.user_id, user_id=owner.user_id, role="admin"
        )
    assert role_of(org_id, owner) == "owner"


def test_change_member_role_lets_owner_step_down_when_another_owner_exists():
    # Given an org with two owners
    first, second = new_user("first"), new_user("second")
    org_id = new_org(first)
    add_member(org_id, second, "owner")

    # When one owner demotes themself
    service.change_member_role(
        org_id=org_id, actor_id=first.user_id, user_id=first.user_id, role="member"
    )

    # Then they are a member and the org still has one owner
    assert role_of(org_id, first) == "member"
    assert OrgModel.get(f"ORG#{org_id}", "META").owner_count == 1


def test_change_member_role_lets_admin_promote_member_to_admin():
    # Given an admin and a member
    owner, admin, member = new_user("owner"), new_user("admin"), new_user("member")
    org_id = new_org(owner)
    add_member(org_id, admin, "admin")
    add_member(org_id, member, "member")

    # When the admin promotes the member
    service.change_member_role(
        org_id=org_id, actor_id=admin.user_id, user_id=member.user_id, role="admin"
    )

    # Then the member is an admin
    assert role_of(org_id, member) == "admin"


def test_change_member_role_refuses_admin_granting_owner():
    # Given an admin and a member
    owner, admin, member = new_user("owner"), new_user("admin"), new_user("member")
    org_id = new_org(owner)
    add_member(org_id, admin, "admin")
    add_member(org_id, member, "member")

    # When the admin makes the member owner
    # Then only an owner may do that
    with pytest.raises(Forbidden, match="grant the owner role"):
        service.change_member_role(
            org_id=org_id, actor_id=admin.user_id, user_id=member.user_id, role="owner"
        )


def test_change_member_role_refuses_admin_demoting_owner():
    # Given an admin and the owner
    owner, admin = new_user("owner"), new_user("admin")
    org_id = new_org(owner)
    add_member(org_id, admin, "admin")

    # When the admin demotes the owner
    # Then only an owner may change an owner
    with pytest.raises(Forbidden, match="Only an owner"):
        service.change_member_role(
            org_id=org_id, actor_id=admin.user_id, user_id=owner.user_id, role="viewer"
        )


def test_change_member_role_refuses_viewer():
    # Given a viewer and a member
    owner, viewer, member = new_user("owner"), new_user("viewer"), new_user("member")
    org_id = new_org(owner)
    add_member(org_id, viewer, "viewer")
    add_member(org_id, member, "member")

    # When the viewer changes the member's role
    # Then it is forbidden
    with pytest.raises(Forbidden):
        service.change_member_role(
            org_id=org_id, actor_id=viewer.user_id, user_id=member.user_id, role="viewer"
        )


def test_change_member_role_counts_granted_ownership_toward_plan_limit():
    # Given a member who already owns the most orgs one user can own
    owner, busy = new_user("owner"), new_user("busy")
    org_id = new_org(owner)
    add_member(org_id, busy, "member")
    for number in range(service.MAX_OWNED_ORGS):
        new_org(busy, name=f"Busy {number}")

    # When the owner makes them owner of one more
    # Then the plan limit refuses it
    with pytest.raises(OrgLimitReached):
        service.change_member_role(
            org_id=org_id, actor_id=owner.user_id, user_id=busy.user_id, role="owner"
        )


def test_change_member_role_unknown_member_is_not_found():
    # Given an org owner
    owner = new_user("owner")
    org_id = new_org(owner)

    # When changing the role of someone who is not a member
    # Then the member is not found
    with pytest.raises(NotFound, match="member"):
        service.change_member_role(
            org_id=org_id, actor_id=owner.user_id, user_id=new_id(), role="viewer"
        )


# --- leaving and removal ------------------------------------------------------------------


def test_remove_member_lets_admin_remove_member():
    # Given an admin and a member
    owner, admin, member = new_user("owner"), new_user("admin"), new_user("member")
    org_id = new_org(owner)
    add_member(org_id, admin, "admin")
    add_member(org_id, member, "member")

    # When the admin removes the member
    service.remove_member(org_id=org_id, actor_id=admin.user_id, user_id=member.user_id)

    # Then the member no longer sees the org
    with pytest.raises(NotFound):
        service.get_membership(org_id, member.user_id)


def test_remove_member_refuses_admin_removing_owner():
    # Given an admin and the owner
    owner, admin = new_user("owner"), new_user("admin")
    org_id = new_org(owner)
    add_member(org_id, admin, "admin")

    # When the admin removes the owner
    # Then it is forbidden
    with pytest.raises(Forbidden):
        service.remove_member(org_id=org_id, actor_id=admin.user_id, user_id=owner.user_id)


def test_remove_member_frees_the_address_for_a_new_invitation():
    # Given a member who was removed
    owner, member = new_user("owner"), new_user("member")
    org_id = new_org(owner)
    add_member(org_id, member, "member")
    service.remove_member(org_id=org_id, actor_id=owner.user_id, user_id=member.user_id)

    # When their address is invited again
    token = invite(org_id, owner, member.email)

    # Then the invitation is sent
    assert token


def test_remove_of_last_owner_is_refused_even_after_a_stale_read():
    # Given two owners, one read while both were owners, then the other stepped down
    first, second = new_user("first"), new_user("second")
    org_id = new_org(first)
    add_member(org_id, second, "owner")
    stale_first = service.get_membership(org_id, first.user_id)
    service.change_member_role(
        org_id=org_id, actor_id=second.user_id, user_id=second.user_id, role="admin"
    )

    # When the stale read is used to remove the first owner (a lost race)
    # Then the transaction's condition still keeps the last owner
    with pytest.raises(LastOwner):
        service._remove(stale_first)
    assert role_of(org_id, first) == "owner"


def test_leave_org_refuses_last_owner():
    # Given an org with a single owner
    owner = new_user("owner")
    org_id = new_org(owner)

    # When the owner leaves
    # Then it is refused with a last-owner conflict
    with pytest.raises(LastOwner, match="at least one owner"):
        service.leave_org(org_id=org_id, user_id=owner.user_id)


def test_leave_org_removes_org_from_my_orgs():
    # Given a member of an org
    owner, member = new_user("owner"), new_user("member")
    org_id = new_org(owner)
    add_member(org_id, member, "member")

    # When the member leaves
    service.leave_org(org_id=org_id, user_id=member.user_id)

    # Then the org is no longer in their list
    orgs, _ = service.list_my_orgs(user_id=member.user_id, limit=None, cursor=None)
    assert orgs == []


def test_leave_org_gives_back_an_owned_org_slot():
    # Given a user at the plan limit who co-owns one of their orgs with someone else
    owner, partner = new_user("owner"), new_user("partner")
    org_ids = [new_org(owner, name=f"Org {n}") for n in range(service.MAX_OWNED_ORGS)]
    add_member(org_ids[0], partner, "owner")

    # When they leave that org
    service.leave_org(org_id=org_ids[0], user_id=owner.user_id)

    # Then they may create another
    assert new_org(owner, name="Fresh start")


def test_add_member_twice_is_a_conflict():
    # Given a member of an org
    owner, member = new_user("owner"), new_user("member")
    org_id = new_org(owner)
    add_member(org_id, member, "member")

    # When the same user is added again
    # Then it is a conflict
    with pytest.raises(Conflict):
        add_member(org_id, member, "viewer")


# --- demo seeding -------------------------------------------------------------------------


def test_ensure_demo_org_reuses_the_owners_org_of_that_name():
    # Given a demo org seeded once
    owner = new_user("owner")
    first = service.ensure_demo_org(
        name="Demo", owner_id=owner.user_id, owner_email=owner.email, members=[]
    )

    # When seeding runs again
    second = service.ensure_demo_org(
        name="Demo", owner_id=owner.user_id, owner_email=owner.email, members=[]
    )

    # Then the same org is answered and the owner still has only one
    assert (second.org_id, second.name) == (first.org_id, "Demo")
    orgs, _ = service.list_my_orgs(user_id=owner.user_id, limit=None, cursor=None)
    assert len(orgs) == 1


def test_ensure_demo_org_adds_only_missing_members():
    # Given a demo org that already has one of its members
    owner, tutor, student = new_user("owner"), new_user("tutor"), new_user("student")
    org = service.ensure_demo_org(
        name="Demo",
        owner_id=owner.user_id,
        owner_email=owner.email,
        members=[(tutor.user_id, tutor.email, "admin")],
    )

    # When seeding runs again with one more member
    service.ensure_demo_org(
        name="Demo",
        owner_id=owner.user_id,
        owner_email=owner.email,
        members=[(tutor.user_id, tutor.email, "admin"), (student.user_id, student.email, "member")],
    )

    # Then both members are there with their roles
    assert role_of(org.org_id, tutor) == "admin"
    assert role_of(org.org_id, student) == "member"
