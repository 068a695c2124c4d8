"""Organizations through the gateway: invitations by mail, roles, and tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Api, Outbox, signed_up_user


@pytest.fixture(scope="module")
def team(api: Api, outbox: Outbox) -> dict[str, Any]:
    """An org whose owner invited a viewer, who accepted through the mailed token."""
    owner = signed_up_user(api, outbox, "owner")
    viewer = signed_up_user(api, outbox, "viewer")
    org = api.post("/api/v1/orgs", token=owner["access_token"], json={"name": "Rocket Lab"})
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    invited = api.post(
        f"/api/v1/orgs/{org_id}/invitations",
        token=owner["access_token"],
        json={"email": viewer["email"], "role": "viewer"},
    )
    assert invited.status_code == 201, invited.text
    token = Outbox.token(outbox.wait_for(viewer["email"], "invited you"))
    accepted = api.post(
        "/api/v1/invitations/accept", token=viewer["access_token"], json={"token": token}
    )
    assert accepted.status_code == 200, accepted.text
    return {"owner": owner, "viewer": viewer, "org_id": org_id, "token": token}


def test_invitation_makes_the_invitee_a_member(api: Api, team: dict[str, Any]) -> None:
    mine = api.get("/api/v1/orgs", token=team["viewer"]["access_token"]).json()["items"]
    assert [(o["id"], o["role"]) for o in mine] == [(team["org_id"], "viewer")]
    members = api.get(
        f"/api/v1/orgs/{team['org_id']}/members", token=team["owner"]["access_token"]
    ).json()["items"]
    assert {m["email"]: m["role"] for m in members} == {
        team["owner"]["email"]: "owner",
        team["viewer"]["email"]: "viewer",
    }


def test_invitation_token_works_once(api: Api, team: dict[str, Any]) -> None:
    again = api.post(
        "/api/v1/invitations/accept",
        token=team["viewer"]["access_token"],
        json={"token": team["token"]},
    )
    assert again.status_code in (400, 409)


def test_viewer_cannot_change_roles(api: Api, team: dict[str, Any]) -> None:
    answer = api.patch(
        f"/api/v1/orgs/{team['org_id']}/members/{team['owner']['id']}",
        token=team["viewer"]["access_token"],
        json={"role": "viewer"},
    )
    assert answer.status_code == 403
    assert answer.headers["Content-Type"] == "application/problem+json"


@pytest.fixture(scope="module")
def outsider(api: Api, outbox: Outbox) -> dict[str, Any]:
    return signed_up_user(api, outbox, "outsider")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("GET", "/members", None),
        ("GET", "/invitations", None),
        ("POST", "/invitations", {"email": "intruder@example.com", "role": "member"}),
        ("POST", "/leave", None),
    ],
)
def test_outsider_sees_no_such_org(
    api: Api, outsider: dict[str, Any], team: dict[str, Any], method: str, suffix: str, body: Any
) -> None:
    answer = api.call(
        method, f"/api/v1/orgs/{team['org_id']}{suffix}", token=outsider["access_token"], json=body
    )
    assert answer.status_code == 404
    assert answer.json()["type"] == "urn:kumo:problem:not-found"


def test_last_owner_cannot_leave(api: Api, team: dict[str, Any]) -> None:
    answer = api.post(f"/api/v1/orgs/{team['org_id']}/leave", token=team["owner"]["access_token"])
    assert answer.status_code == 409
