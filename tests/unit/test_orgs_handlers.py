"""The /api/v1/orgs and /api/v1/invitations handlers: status codes, bodies, problems, isolation."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from kumo.orgs import service
from kumo.tasks.models import EmailTaskModel, task_key

from tests.support import factories
from tests.support.factories import new_principal
from tests.unit.conftest import QUEUE_URL

pytestmark = pytest.mark.usefixtures("aws")

PROBLEM = "urn:kumo:problem:"


def create_org(call_api: Any, user: dict[str, str], name: str = "Acme") -> str:
    response = call_api(
        "orgs/create_org", "POST", "/api/v1/orgs", body={"name": name}, principal=user
    )
    assert response["statusCode"] == 201, response
    return str(response["json"]["id"])


def add_member(org_id: str, user: dict[str, str], role: str) -> None:
    factories.add_member(org_id, user["subject_id"], user["email"], role)


def invite(call_api: Any, org_id: str, actor: dict[str, str], email: str, role: str) -> Any:
    return call_api(
        "orgs/invite_member",
        "POST",
        f"/api/v1/orgs/{org_id}/invitations",
        resource="/api/v1/orgs/{org_id}/invitations",
        body={"email": email, "role": role},
        principal=actor,
    )


def mailed_token() -> str:
    (message,) = boto3.client("sqs").receive_message(QueueUrl=QUEUE_URL).get("Messages", [])
    task = EmailTaskModel.get(task_key(json.loads(message["Body"])["task_id"]), "TASK")
    return str(task.params["token"])


def problem_type(response: dict[str, Any]) -> str:
    return str(response["json"]["type"]).removeprefix(PROBLEM)


# --- POST /orgs, GET /orgs, GET /orgs/{org_id} --------------------------------------------


def test_create_org_answers_201_with_owner_role(call_api):
    # Given a signed-in user
    user = new_principal()

    # When they create an org
    response = call_api(
        "orgs/create_org", "POST", "/api/v1/orgs", body={"name": "  Acme  "}, principal=user
    )

    # Then the org is answered, trimmed, with the caller as owner
    assert response["statusCode"] == 201, response
    assert (response["json"]["name"], response["json"]["role"]) == ("Acme", "owner")


@pytest.mark.parametrize(
    "body",
    [{"name": ""}, {"name": "x" * 81}, {}, {"name": "Acme", "plan": "gold"}],
    ids=["empty", "too-long", "missing", "unknown-field"],
)
def test_create_org_rejects_bad_body_with_422(call_api, body):
    # Given a body that breaks the schema
    user = new_principal()

    # When creating an org with it
    response = call_api("orgs/create_org", "POST", "/api/v1/orgs", body=body, principal=user)

    # Then it is a validation problem
    assert response["statusCode"] == 422, response
    assert problem_type(response) == "validation-error"


def test_create_org_refuses_anonymous_caller_with_401(call_api):
    # Given no principal in the request context
    # When creating an org
    response = call_api("orgs/create_org", "POST", "/api/v1/orgs", body={"name": "Acme"})

    # Then it is unauthorized
    assert response["statusCode"] == 401, response


def test_create_org_over_plan_limit_answers_409_problem(call_api):
    # Given a user who owns the most orgs one user can own
    user = new_principal()
    for number in range(service.MAX_OWNED_ORGS):
        create_org(call_api, user, name=f"Org {number}")

    # When they create one more
    response = call_api(
        "orgs/create_org", "POST", "/api/v1/orgs", body={"name": "More"}, principal=user
    )

    # Then it is a conflict that names the limit
    assert response["statusCode"] == 409, response
    assert problem_type(response) == "org-limit-reached"
    assert str(service.MAX_OWNED_ORGS) in response["json"]["detail"]


def test_list_my_orgs_answers_a_page_with_my_role(call_api):
    # Given a user who owns one org and is a viewer in another
    user, other = new_principal(), new_principal("other")
    owned = create_org(call_api, user, name="Mine")
    viewed = create_org(call_api, other, name="Theirs")
    add_member(viewed, user, "viewer")

    # When they list their orgs
    response = call_api("orgs/list_my_orgs", "GET", "/api/v1/orgs", principal=user)

    # Then both are listed with the caller's role in each
    assert response["statusCode"] == 200, response
    roles = {item["id"]: item["role"] for item in response["json"]["items"]}
    assert roles == {owned: "owner", viewed: "viewer"}


def test_list_my_orgs_follows_next_cursor(call_api):
    # Given a user in two orgs
    user = new_principal()
    created = {create_org(call_api, user, name=f"Org {n}") for n in range(2)}

    # When listing one per page and following the cursor
    first = call_api(
        "orgs/list_my_orgs", "GET", "/api/v1/orgs", query={"limit": "1"}, principal=user
    )
    second = call_api(
        "orgs/list_my_orgs",
        "GET",
        "/api/v1/orgs",
        query={"limit": "1", "cursor": first["json"]["next_cursor"]},
        principal=user,
    )

    # Then the two pages hold both orgs
    listed = {item["id"] for page in (first, second) for item in page["json"]["items"]}
    assert listed == created


def test_list_my_orgs_rejects_limit_out_of_range_with_422(call_api):
    # Given a signed-in user
    user = new_principal()

    # When asking for more than a page may hold
    response = call_api(
        "orgs/list_my_orgs", "GET", "/api/v1/orgs", query={"limit": "1000"}, principal=user
    )

    # Then it is a validation problem
    assert response["statusCode"] == 422, response


def test_get_org_answers_org_with_my_role(call_api):
    # Given an org with an admin
    owner, admin = new_principal("owner"), new_principal("admin")
    org_id = create_org(call_api, owner, name="Acme")
    add_member(org_id, admin, "admin")

    # When the admin reads it
    response = call_api(
        "orgs/get_org",
        "GET",
        f"/api/v1/orgs/{org_id}",
        resource="/api/v1/orgs/{org_id}",
        principal=admin,
    )

    # Then it answers the org and the admin's role
    assert response["statusCode"] == 200, response
    assert response["json"] == {
        "id": org_id,
        "name": "Acme",
        "created_at": response["json"]["created_at"],
        "role": "admin",
        "telemetry_retention_days": 7,
    }


# --- tenant isolation ---------------------------------------------------------------------

ORG_SCOPED_ROUTES = [
    ("orgs/get_org", "GET", "", None),
    ("orgs/update_org", "PATCH", "", {"telemetry_retention_days": 30}),
    ("orgs/list_members", "GET", "/members", None),
    ("orgs/invite_member", "POST", "/invitations", {"email": "x@example.com", "role": "member"}),
    ("orgs/list_invitations", "GET", "/invitations", None),
    ("orgs/revoke_invitation", "DELETE", "/invitations/{invitation_id}", None),
    ("orgs/update_member", "PATCH", "/members/{user_id}", {"role": "viewer"}),
    ("orgs/remove_member", "DELETE", "/members/{user_id}", None),
    ("orgs/leave_org", "POST", "/leave", None),
]


@pytest.mark.parametrize(
    ("function", "method", "suffix", "body"), ORG_SCOPED_ROUTES, ids=lambda v: str(v)
)
def test_org_scoped_routes_answer_404_to_non_members(call_api, function, method, suffix, body):
    # Given an org with a member and a pending invitation, and a user of another org
    owner, member, stranger = (
        new_principal("owner"),
        new_principal("member"),
        new_principal("stranger"),
    )
    org_id = create_org(call_api, owner)
    add_member(org_id, member, "member")
    create_org(call_api, stranger, name="Elsewhere")
    invitation = invite(call_api, org_id, owner, "invitee@example.com", "viewer")
    path = f"/api/v1/orgs/{org_id}" + suffix.format(
        invitation_id=invitation["json"]["id"], user_id=member["subject_id"]
    )

    # When the stranger calls the route on that org
    response = call_api(function, method, path, body=body, principal=stranger)

    # Then the org looks as if it did not exist, and nothing changed
    assert response["statusCode"] == 404, response
    assert problem_type(response) == "not-found"
    assert service.get_membership(org_id, member["subject_id"]).role == "member"


# --- members ------------------------------------------------------------------------------


def test_list_members_answers_user_email_role_and_join_time(call_api):
    # Given an org with an owner and a viewer
    owner, viewer = new_principal("owner"), new_principal("viewer")
    org_id = create_org(call_api, owner)
    add_member(org_id, viewer, "viewer")

    # When the viewer lists the members
    response = call_api(
        "orgs/list_members", "GET", f"/api/v1/orgs/{org_id}/members", principal=viewer
    )

    # Then both members are listed with their e-mail and role
    assert response["statusCode"] == 200, response
    members = {m["user_id"]: (m["email"], m["role"]) for m in response["json"]["items"]}
    assert members == {
        owner["subject_id"]: (owner["email"], "owner"),
        viewer["subject_id"]: (viewer["email"], "viewer"),
    }
    assert all(m["joined_at"] for m in response["json"]["items"])


def test_list_members_rejects_forged_cursor_with_400(call_api):
    # Given a member of an org
    owner = new_principal("owner")
    org_id = create_org(call_api, owner)

    # When paging with a cursor this API never issued
    response = call_api(
        "orgs/list_members",
        "GET",
        f"/api/v1/orgs/{org_id}/members",
        query={"cursor": "eyJwayI6eyJTIjoiT1JHI3gifX0.forged"},
        principal=owner,
    )

    # Then it is a bad request
    assert response["statusCode"] == 400, response


def test_update_member_answers_member_with_new_role(call_api):
    # Given an org with a member
    owner, member = new_principal("owner"), new_principal("member")
    org_id = create_org(call_api, owner)
    add_member(org_id, member, "member")

    # When the owner makes the member an admin
    response = call_api(
        "orgs/update_member",
        "PATCH",
        f"/api/v1/orgs/{org_id}/members/{member['subject_id']}",
        body={"role": "admin"},
        principal=owner,
    )

    # Then the member is answered with the new role
    assert response["statusCode"] == 200, response
    assert (response["json"]["user_id"], response["json"]["role"]) == (
        member["subject_id"],
        "admin",
    )


def test_update_member_by_viewer_answers_403(call_api):
    # Given a viewer and a member
    owner, viewer, member = new_principal("owner"), new_principal("viewer"), new_principal("member")
    org_id = create_org(call_api, owner)
    add_member(org_id, viewer, "viewer")
    add_member(org_id, member, "member")

    # When the viewer changes the member's role
    response = call_api(
        "orgs/update_member",
        "PATCH",
        f"/api/v1/orgs/{org_id}/members/{member['subject_id']}",
        body={"role": "viewer"},
        principal=viewer,
    )

    # Then it is forbidden
    assert response["statusCode"] == 403, response
    assert problem_type(response) == "forbidden"


def test_update_member_rejects_unknown_role_with_422(call_api):
    # Given an org owner and a member
    owner, member = new_principal("owner"), new_principal("member")
    org_id = create_org(call_api, owner)
    add_member(org_id, member, "member")

    # When setting a role orgs do not have
    response = call_api(
        "orgs/update_member",
        "PATCH",
        f"/api/v1/orgs/{org_id}/members/{member['subject_id']}",
        body={"role": "superuser"},
        principal=owner,
    )

    # Then it is a validation problem
    assert response["statusCode"] == 422, response


def test_update_member_demoting_last_owner_answers_409(call_api):
    # Given an org with one owner
    owner = new_principal("owner")
    org_id = create_org(call_api, owner)

    # When the owner demotes themself
    response = call_api(
        "orgs/update_member",
        "PATCH",
        f"/api/v1/orgs/{org_id}/members/{owner['subject_id']}",
        body={"role": "member"},
        principal=owner,
    )

    # Then it is a last-owner conflict with a clear detail
    assert response["statusCode"] == 409, response
    assert problem_type(response) == "last-owner"
    assert "at least one owner" in response["json"]["detail"]


def test_remove_member_answers_204(call_api):
    # Given an org with a member
    owner, member = new_principal("owner"), new_principal("member")
    org_id = create_org(call_api, owner)
    add_member(org_id, member, "member")

    # When the owner removes the member
    response = call_api(
        "orgs/remove_member",
        "DELETE",
        f"/api/v1/orgs/{org_id}/members/{member['subject_id']}",
        principal=owner,
    )

    # Then it answers no content and the member is gone
    assert response["statusCode"] == 204, response
    gone = call_api("orgs/get_org", "GET", f"/api/v1/orgs/{org_id}", principal=member)
    assert gone["statusCode"] == 404


def test_leave_org_answers_204(call_api):
    # Given an org with a viewer
    owner, viewer = new_principal("owner"), new_principal("viewer")
    org_id = create_org(call_api, owner)
    add_member(org_id, viewer, "viewer")

    # When the viewer leaves
    response = call_api("orgs/leave_org", "POST", f"/api/v1/orgs/{org_id}/leave", principal=viewer)

    # Then it answers no content
    assert response["statusCode"] == 204, response


def test_leave_org_by_last_owner_answers_409(call_api):
    # Given an org with one owner
    owner = new_principal("owner")
    org_id = create_org(call_api, owner)

    # When the owner leaves
    response = call_api("orgs/leave_org", "POST", f"/api/v1/orgs/{org_id}/leave", principal=owner)

    # Then it is a last-owner conflict
    assert response["statusCode"] == 409, response
    assert problem_type(response) == "last-owner"


# --- invitations --------------------------------------------------------------------------


def test_invite_member_answers_201_pending_invitation(call_api):
    # Given an org owner
    owner = new_principal("owner")
    org_id = create_org(call_api, owner)

    # When they invite an address, spelled loosely
    response = invite(call_api, org_id, owner, " New.Person@Example.com ", "viewer")

    # Then a pending invitation for the normalised address is answered, without its token
    assert response["statusCode"] == 201, response
    body = response["json"]
    assert set(body) == {"id", "email", "role", "expires_at", "status"}
    assert (body["email"], body["role"], body["status"]) == (
        "new.person@example.com",
        "viewer",
        "pending",
    )


def test_invite_member_as_owner_answers_422(call_api):
    # Given an org owner
    owner = new_principal("owner")
    org_id = create_org(call_api, owner)

    # When they invite someone as owner
    response = invite(call_api, org_id, owner, "boss@example.com", "owner")

    # Then it is a validation problem: ownership is granted, not invited
    assert response["statusCode"] == 422, response


def test_invite_member_by_member_answers_403(call_api):
    # Given a plain member
    owner, member = new_principal("owner"), new_principal("member")
    org_id = create_org(call_api, owner)
    add_member(org_id, member, "member")

    # When the member invites someone
    response = invite(call_api, org_id, member, "friend@example.com", "viewer")

    # Then it is forbidden
    assert response["statusCode"] == 403, response


def test_invite_member_already_member_answers_409(call_api):
    # Given an org with an admin
    owner, admin = new_principal("owner"), new_principal("admin")
    org_id = create_org(call_api, owner)
    add_member(org_id, admin, "admin")

    # When the admin's address is invited
    response = invite(call_api, org_id, owner, admin["email"], "member")

    # Then it is an already-member conflict
    assert response["statusCode"] == 409, response
    assert problem_type(response) == "already-member"


def test_list_invitations_by_viewer_answers_403(call_api):
    # Given a viewer
    owner, viewer = new_principal("owner"), new_principal("viewer")
    org_id = create_org(call_api, owner)
    add_member(org_id, viewer, "viewer")

    # When the viewer lists invitations
    response = call_api(
        "orgs/list_invitations", "GET", f"/api/v1/orgs/{org_id}/invitations", principal=viewer
    )

    # Then it is forbidden
    assert response["statusCode"] == 403, response


def test_revoke_invitation_answers_204_and_unlists_it(call_api):
    # Given a pending invitation
    owner = new_principal("owner")
    org_id = create_org(call_api, owner)
    invitation_id = invite(call_api, org_id, owner, "later@example.com", "member")["json"]["id"]

    # When the owner revokes it
    response = call_api(
        "orgs/revoke_invitation",
        "DELETE",
        f"/api/v1/orgs/{org_id}/invitations/{invitation_id}",
        principal=owner,
    )

    # Then it answers no content and it is no longer pending
    assert response["statusCode"] == 204, response
    listed = call_api(
        "orgs/list_invitations", "GET", f"/api/v1/orgs/{org_id}/invitations", principal=owner
    )
    assert listed["json"]["items"] == []


def test_accept_invitation_answers_membership(call_api):
    # Given an invitation mailed to a user's address
    owner, invitee = new_principal("owner"), new_principal("invitee")
    org_id = create_org(call_api, owner)
    invite(call_api, org_id, owner, invitee["email"], "member")
    token = mailed_token()

    # When the user accepts it
    response = call_api(
        "orgs/accept_invitation",
        "POST",
        "/api/v1/invitations/accept",
        body={"token": token},
        principal=invitee,
    )

    # Then the membership is answered
    assert response["statusCode"] == 200, response
    assert response["json"]["org_id"] == org_id
    assert (response["json"]["user_id"], response["json"]["role"]) == (
        invitee["subject_id"],
        "member",
    )


def test_accept_invitation_with_unknown_token_answers_400_invalid_token(call_api):
    # Given a signed-in user
    user = new_principal()

    # When they present a token nobody issued
    response = call_api(
        "orgs/accept_invitation",
        "POST",
        "/api/v1/invitations/accept",
        body={"token": "not-a-token-anyone-issued"},
        principal=user,
    )

    # Then it is an invalid-token problem
    assert response["statusCode"] == 400, response
    assert problem_type(response) == "invalid-token"


def test_accept_invitation_for_another_address_answers_403(call_api):
    # Given an invitation for one address
    owner, other = new_principal("owner"), new_principal("other")
    org_id = create_org(call_api, owner)
    invite(call_api, org_id, owner, "invitee@example.com", "member")
    token = mailed_token()

    # When a user with another address accepts it
    response = call_api(
        "orgs/accept_invitation",
        "POST",
        "/api/v1/invitations/accept",
        body={"token": token},
        principal=other,
    )

    # Then it is forbidden
    assert response["statusCode"] == 403, response


def test_accept_invitation_when_already_member_answers_409(call_api):
    # Given an invitation, after which the invitee became a member another way
    owner, invitee = new_principal("owner"), new_principal("invitee")
    org_id = create_org(call_api, owner)
    invite(call_api, org_id, owner, invitee["email"], "member")
    token = mailed_token()
    add_member(org_id, invitee, "viewer")

    # When they accept the invitation
    response = call_api(
        "orgs/accept_invitation",
        "POST",
        "/api/v1/invitations/accept",
        body={"token": token},
        principal=invitee,
    )

    # Then it is an already-member conflict
    assert response["statusCode"] == 409, response
    assert problem_type(response) == "already-member"
