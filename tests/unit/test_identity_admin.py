"""GET /api/v1/admin/users, PATCH /api/v1/admin/users/{user_id}, GET /api/v1/admin/audit."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from kumo.core import clock
from kumo.identity import service

from tests.support.factories import PASSWORD, principal_for, unique_email, verified_user

pytestmark = pytest.mark.usefixtures("aws")

LIST_USERS = ("identity/admin_list_users", "GET", "/api/v1/admin/users")
AUDIT = ("identity/admin_audit", "GET", "/api/v1/admin/audit")
LOGIN = ("identity/login", "POST", "/api/v1/auth/login")
REFRESH = ("identity/refresh", "POST", "/api/v1/auth/refresh")
DAY = 24 * 3600


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> float:
    """Noon UTC today: audit events are partitioned by day, so no test may straddle midnight."""
    noon = (int(time.time()) // DAY) * DAY + DAY / 2
    monkeypatch.setattr(clock, "now", lambda: noon)
    return noon


@pytest.fixture
def admin() -> dict[str, str]:
    email = unique_email("admin")
    return principal_for(verified_user(email, role="admin"), "admin", email)


def update_user(call_api: Any, user_id: str, body: dict[str, Any], principal: dict[str, str]):
    return call_api(
        "identity/admin_update_user",
        "PATCH",
        f"/api/v1/admin/users/{user_id}",
        resource="/api/v1/admin/users/{user_id}",
        path_parameters={"user_id": user_id},
        body=body,
        principal=principal,
    )


def audit_events(call_api: Any, principal: dict[str, str], event: str) -> list[dict[str, Any]]:
    response = call_api(*AUDIT, query={"limit": "100"}, principal=principal)
    assert response["statusCode"] == 200
    return [item for item in response["json"]["items"] if item["event"] == event]


def login(call_api: Any, email: str, password: str = PASSWORD) -> dict[str, Any]:
    return call_api(*LOGIN, body={"email": email, "password": password})


# --- list users ---------------------------------------------------------------------------


def test_admin_list_users_pages_without_duplicates(call_api, admin):
    # Given three accounts besides the admin's
    created = {verified_user(unique_email(f"page{n}")) for n in range(3)}

    # When following next_cursor with two users a page
    pages: list[list[str]] = []
    cursor = None
    while cursor is not None or not pages:
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        response = call_api(*LIST_USERS, query=query, principal=admin)
        assert response["statusCode"] == 200
        pages.append([user["id"] for user in response["json"]["items"]])
        cursor = response["json"]["next_cursor"]

    # Then pages hold at most two users and every account appears exactly once
    seen = [user_id for page in pages for user_id in page]
    assert [len(page) for page in pages][:2] == [2, 2]
    assert len(seen) == len(set(seen)) == 4
    assert set(seen) == created | {admin["subject_id"]}


def test_admin_list_users_refuses_tampered_cursor(call_api, admin):
    # Given a cursor the API issued, with its key rewritten but its signature kept
    for n in range(3):
        verified_user(unique_email(f"tamper{n}"))
    cursor = call_api(*LIST_USERS, query={"limit": "1"}, principal=admin)["json"]["next_cursor"]
    body, signature = cursor.split(".")
    key = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    key["gsi1sk"]["S"] = "9999"
    forged = base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")

    # When listing from it
    response = call_api(
        *LIST_USERS, query={"limit": "1", "cursor": f"{forged}.{signature}"}, principal=admin
    )

    # Then it is a 400 problem about the cursor
    assert response["statusCode"] == 400
    assert response["json"]["type"] == "urn:kumo:problem:bad-request"
    assert response["json"]["field"] == "cursor"


def test_admin_list_users_refuses_garbage_cursor(call_api, admin):
    # Given a cursor the API never issued
    # When listing from it
    response = call_api(*LIST_USERS, query={"cursor": "not-a-cursor"}, principal=admin)

    # Then it is a 400 problem
    assert response["statusCode"] == 400
    assert response["json"]["type"] == "urn:kumo:problem:bad-request"


def test_admin_list_users_refuses_cursor_of_another_list(call_api, admin):
    # Given a genuine cursor from the audit log
    for n in range(2):
        service.record_audit("test.event", detail={"n": str(n)})
    cursor = call_api(*AUDIT, query={"limit": "1"}, principal=admin)["json"]["next_cursor"]

    # When listing users from it
    response = call_api(*LIST_USERS, query={"cursor": cursor}, principal=admin)

    # Then it is a 400 about the cursor, not a start key DynamoDB would refuse
    assert response["statusCode"] == 400
    assert response["json"]["field"] == "cursor"


# --- update user --------------------------------------------------------------------------


def test_admin_update_user_changes_role(call_api, admin):
    # Given a plain user
    user_id = verified_user(unique_email("promote"))

    # When an admin makes them a tutor
    response = update_user(call_api, user_id, {"role": "tutor"}, admin)

    # Then the answer and the stored profile carry the new role
    assert response["statusCode"] == 200
    assert response["json"]["role"] == "tutor"
    assert service.get_user(user_id).role == "tutor"


def test_admin_update_user_audits_role_change(call_api, admin):
    # Given a plain user
    user_id = verified_user(unique_email("audited"))

    # When an admin makes them a tutor
    update_user(call_api, user_id, {"role": "tutor"}, admin)

    # Then the audit log shows who changed what, from and to
    (event,) = audit_events(call_api, admin, "user.role_changed")
    assert event["actor_id"] == admin["subject_id"]
    assert event["subject_id"] == user_id
    assert event["detail"] == {"from": "user", "to": "tutor"}


def test_admin_update_user_refuses_own_account(call_api, admin):
    # Given an admin
    # When they try to change their own role
    response = update_user(call_api, admin["subject_id"], {"role": "user"}, admin)

    # Then it is a conflict and they stay admin
    assert response["statusCode"] == 409
    assert response["json"]["type"] == "urn:kumo:problem:conflict"
    assert service.get_user(admin["subject_id"]).role == "admin"


def test_admin_update_user_refuses_unknown_role(call_api, admin):
    # Given a plain user
    user_id = verified_user(unique_email("badrole"))

    # When an admin sets a role that does not exist
    response = update_user(call_api, user_id, {"role": "superuser"}, admin)

    # Then it is a validation problem on role
    assert response["statusCode"] == 422
    assert [e["field"] for e in response["json"]["errors"]] == ["role"]


def test_admin_update_user_unknown_user_is_not_found(call_api, admin):
    # Given an id nobody has
    # When an admin updates it
    response = update_user(call_api, "01ZZZZZZZZZZZZZZZZZZZZZZZZ", {"active": False}, admin)

    # Then it is a 404 problem
    assert response["statusCode"] == 404


def test_admin_update_user_deactivation_is_audited(call_api, admin):
    # Given a plain user
    user_id = verified_user(unique_email("deactivated-audit"))

    # When an admin deactivates them
    response = update_user(call_api, user_id, {"active": False}, admin)

    # Then the profile says so and the audit log names the actor
    assert response["json"]["active"] is False
    (event,) = audit_events(call_api, admin, "user.deactivated")
    assert (event["actor_id"], event["subject_id"]) == (admin["subject_id"], user_id)


def test_login_refuses_deactivated_user(call_api, admin):
    # Given a deactivated account
    email = unique_email("disabled")
    user_id = verified_user(email)
    update_user(call_api, user_id, {"active": False}, admin)

    # When signing in with the right password
    response = login(call_api, email)

    # Then it is forbidden as a disabled account
    assert response["statusCode"] == 403
    assert response["json"]["type"] == "urn:kumo:problem:account-disabled"


def test_admin_update_user_deactivation_revokes_refresh_tokens(call_api, admin):
    # Given a session opened before the account was deactivated
    email = unique_email("disabled-session")
    user_id = verified_user(email)
    refresh_token = login(call_api, email)["json"]["refresh_token"]

    # When an admin deactivates the account
    update_user(call_api, user_id, {"active": False}, admin)

    # Then the session can no longer refresh
    assert call_api(*REFRESH, body={"refresh_token": refresh_token})["statusCode"] == 401


# --- audit --------------------------------------------------------------------------------


def test_admin_audit_shows_login_succeeded(call_api, admin):
    # Given a successful sign-in
    email = unique_email("audit-ok")
    user_id = verified_user(email)
    login(call_api, email)

    # When an admin reads the audit log
    (event,) = audit_events(call_api, admin, "login.succeeded")

    # Then it names the user and the caller's address
    assert (event["actor_id"], event["subject_id"]) == (user_id, user_id)
    assert event["source_ip"] == "203.0.113.10"


def test_admin_audit_shows_login_failed(call_api, admin):
    # Given a wrong password for an account and a sign-in for an unknown address
    email = unique_email("audit-failed")
    user_id = verified_user(email)
    login(call_api, email, "not the password 1")
    login(call_api, unique_email("audit-nobody"))

    # When an admin reads the audit log
    events = audit_events(call_api, admin, "login.failed")

    # Then both failures are there with their reason, and no password
    reasons = {(e["subject_id"], e["detail"]["reason"]) for e in events}
    assert reasons == {(user_id, "wrong-password"), (None, "unknown-account")}
    assert "not the password 1" not in json.dumps(events)


def test_admin_audit_shows_token_reuse_detected(call_api, admin):
    # Given a refresh token replayed after rotation
    email = unique_email("audit-reuse")
    user_id = verified_user(email)
    old = login(call_api, email)["json"]["refresh_token"]
    call_api(*REFRESH, body={"refresh_token": old})
    call_api(*REFRESH, body={"refresh_token": old})

    # When an admin reads the audit log
    (event,) = audit_events(call_api, admin, "token.reuse_detected")

    # Then the reuse is recorded against the user, with the revoked family
    assert event["subject_id"] == user_id
    assert set(event["detail"]) == {"family_id"}


def test_admin_audit_lists_newest_first(call_api, admin, frozen_clock, monkeypatch):
    # Given two sign-ins a second apart
    email = unique_email("audit-order")
    verified_user(email)
    login(call_api, email)
    monkeypatch.setattr(clock, "now", lambda: frozen_clock + 1)
    login(call_api, email, "not the password 1")

    # When an admin reads the audit log
    response = call_api(*AUDIT, principal=admin)

    # Then the later event comes first
    events = [item["event"] for item in response["json"]["items"]]
    assert events.index("login.failed") < events.index("login.succeeded")


def test_admin_audit_refuses_malformed_day(call_api, admin):
    # Given a day that is not a date
    # When an admin reads the audit log for it
    response = call_api(*AUDIT, query={"day": "yesterday"}, principal=admin)

    # Then it is a validation problem on day
    assert response["statusCode"] == 422
    assert [e["field"] for e in response["json"]["errors"]] == ["day"]
