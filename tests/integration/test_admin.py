"""Administration through the gateway: user list, role changes, audit trail."""

from __future__ import annotations

import time
from typing import Any

from tests.integration.conftest import Api, Outbox, signed_up_user


def test_admin_pages_through_users(api: Api, admin_token: str, outbox: Outbox) -> None:
    for n in range(2):
        signed_up_user(api, outbox, f"page{n}")
    first = api.get("/api/v1/admin/users", token=admin_token, params={"limit": 1}).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = api.get(
        "/api/v1/admin/users",
        token=admin_token,
        params={"limit": 1, "cursor": first["next_cursor"]},
    ).json()
    assert second["items"][0]["id"] != first["items"][0]["id"]
    forged = api.get("/api/v1/admin/users", token=admin_token, params={"cursor": "abc.def"})
    assert forged.status_code == 400


def test_role_change_is_audited_and_takes_effect(
    api: Api, admin_token: str, outbox: Outbox
) -> None:
    # Given a user promoted to tutor by the admin
    user = signed_up_user(api, outbox, "promote")
    changed = api.patch(
        f"/api/v1/admin/users/{user['id']}", token=admin_token, json={"role": "tutor"}
    )
    assert changed.status_code == 200 and changed.json()["role"] == "tutor"

    # Then the audit log has the change with its actor, beside the user's login
    events: list[dict[str, Any]] = api.get(
        "/api/v1/admin/audit", token=admin_token, params={"limit": 100}
    ).json()["items"]
    change = next(
        e for e in events if e["event"] == "user.role_changed" and e["subject_id"] == user["id"]
    )
    assert change["detail"] == {"from": "user", "to": "tutor"} and change["actor_id"]
    assert any(e["event"] == "login.succeeded" and e["subject_id"] == user["id"] for e in events)

    # And the next session carries the new role
    login = api.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": user["password"]}
    ).json()
    assert api.get("/api/v1/users/me", token=login["access_token"]).json()["role"] == "tutor"


def test_deactivated_user_cannot_sign_in(api: Api, admin_token: str, outbox: Outbox) -> None:
    user = signed_up_user(api, outbox, "deactivate")
    api.patch(f"/api/v1/admin/users/{user['id']}", token=admin_token, json={"active": False})
    login = api.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": user["password"]}
    )
    assert login.status_code == 403
    refresh = api.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert refresh.status_code == 401


def _refused_within(api: Api, token: str, seconds: float) -> float:
    """How long until `GET /users/me` refuses the token (401), polling; fails past `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        response = api.get("/api/v1/users/me", token=token)
        if response.status_code == 401:
            return time.monotonic() - started
        assert response.status_code == 200, response.text
        time.sleep(2)
    raise AssertionError(f"the token still worked after {seconds} s")


# The authorizer's cache time (kumo.identity.sessions.CACHE_SECONDS), with room for a request.
SESSION_END_SECONDS = 60 + 15


def test_deactivation_ends_the_access_token_within_a_minute(
    api: Api, admin_token: str, outbox: Outbox
) -> None:
    # Given a signed-in user whose access token works
    user = signed_up_user(api, outbox, "ended")
    assert api.get("/api/v1/users/me", token=user["access_token"]).status_code == 200

    # When an admin deactivates the account
    api.patch(f"/api/v1/admin/users/{user['id']}", token=admin_token, json={"active": False})

    # Then the token is refused within the authorizer's cache time, not at its expiry (15 min)
    _refused_within(api, user["access_token"], SESSION_END_SECONDS)


def test_a_role_change_ends_the_token_and_refresh_carries_the_new_role(
    api: Api, admin_token: str, outbox: Outbox
) -> None:
    # Given a tutor signed in
    user = signed_up_user(api, outbox, "demoted")
    promoted = api.patch(
        f"/api/v1/admin/users/{user['id']}", token=admin_token, json={"role": "tutor"}
    )
    assert promoted.status_code == 200
    tutor = api.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": user["password"]}
    ).json()

    # When the admin takes the role away
    api.patch(f"/api/v1/admin/users/{user['id']}", token=admin_token, json={"role": "user"})

    # Then the tutor's token ends within a minute, and a refresh gives a token of the new role
    _refused_within(api, tutor["access_token"], SESSION_END_SECONDS)
    refreshed = api.post("/api/v1/auth/refresh", json={"refresh_token": tutor["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    me = api.get("/api/v1/users/me", token=refreshed.json()["access_token"])
    assert me.status_code == 200 and me.json()["role"] == "user"
