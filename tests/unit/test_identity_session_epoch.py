"""Access tokens end when their session does: deactivation, a role change or a new password
raise the user's session epoch, and the authorizer refuses tokens issued before it, within
its cache time (kumo.identity.sessions, ADR 27)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kumo.identity import service, sessions

from tests.support.factories import (
    PASSWORD,
    access_token,
    principal_for,
    reset_token,
    unique_email,
    verified_user,
)

pytestmark = pytest.mark.usefixtures("aws")

LOGIN = ("identity/login", "POST", "/api/v1/auth/login")
REFRESH = ("identity/refresh", "POST", "/api/v1/auth/refresh")


class Clock:
    """The monotonic clock the authorizer's cache reads, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def cache_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    clock = Clock()
    monkeypatch.setattr(sessions.time, "monotonic", clock)
    sessions._cache.clear()
    yield clock
    sessions._cache.clear()


@pytest.fixture
def admin() -> dict[str, str]:
    email = unique_email("admin")
    return principal_for(verified_user(email, role="admin"), "admin", email)


def sign_in(call_api: Any, email: str) -> dict[str, Any]:
    response = call_api(*LOGIN, body={"email": email, "password": PASSWORD})
    assert response["statusCode"] == 200
    body: dict[str, Any] = response["json"]
    return body


def allowed(authorize: Callable[[dict[str, str]], dict[str, Any]], token: str) -> bool:
    try:
        result = authorize({"Authorization": f"Bearer {token}"})
    except Exception as error:  # the authorizer's "Unauthorized", which API Gateway maps to 401
        assert str(error) == "Unauthorized"
        return False
    return bool(result["policyDocument"]["Statement"][0]["Effect"] == "Allow")


def update_user(user_id: str, body: dict[str, Any], admin: dict[str, str]) -> None:
    service.admin_update_user(
        actor_id=admin["subject_id"],
        user_id=user_id,
        role=body.get("role"),
        active=body.get("active"),
    )


def test_deactivation_ends_access_tokens_within_the_cache_time(
    call_api, authorize, admin, cache_clock
):
    # Given a signed-in user whose token the authorizer has just accepted
    email = unique_email("leaver")
    user_id = verified_user(email)
    token = sign_in(call_api, email)["access_token"]
    assert allowed(authorize, token)

    # When an admin deactivates the account
    update_user(user_id, {"active": False}, admin)

    # Then a container that read the account before keeps its answer for at most the cache
    # time, and refuses the token after it
    cache_clock.now += sessions.CACHE_SECONDS - 1
    assert allowed(authorize, token)
    cache_clock.now += 1
    assert not allowed(authorize, token)


def test_a_role_change_ends_tokens_and_a_refresh_carries_the_new_role(call_api, authorize, admin):
    # Given a tutor signed in (no container has read the account yet)
    email = unique_email("demoted")
    user_id = verified_user(email, role="tutor")
    session = sign_in(call_api, email)

    # When an admin changes the role
    update_user(user_id, {"role": "user"}, admin)

    # Then the old token is refused, and the session refreshes into the new role
    assert not allowed(authorize, session["access_token"])
    refreshed = call_api(*REFRESH, body={"refresh_token": session["refresh_token"]})
    assert refreshed["statusCode"] == 200
    result = authorize({"Authorization": f"Bearer {refreshed['json']['access_token']}"})
    assert result["context"]["roles"] == "user"


def test_a_password_reset_ends_access_tokens(call_api, authorize):
    # Given a signed-in user
    email = unique_email("reset")
    verified_user(email)
    token = sign_in(call_api, email)["access_token"]

    # When the password is reset with the link its mail carries
    service.reset_password(reset_token(email), "a-new-long-passphrase-42")

    # Then the token from before is refused and a new sign-in works
    assert not allowed(authorize, token)
    response = call_api(*LOGIN, body={"email": email, "password": "a-new-long-passphrase-42"})
    assert allowed(authorize, response["json"]["access_token"])


def test_a_token_newer_than_the_cached_account_reads_it_again(call_api, authorize, admin):
    # Given a container that cached a tutor's account with their first token
    email = unique_email("promoted")
    user_id = verified_user(email, role="tutor")
    first = sign_in(call_api, email)
    assert allowed(authorize, first["access_token"])

    # When the role changes and the user refreshes (a token of the new epoch)
    update_user(user_id, {"role": "admin"}, admin)
    refreshed = call_api(*REFRESH, body={"refresh_token": first["refresh_token"]})["json"]

    # Then the new token is accepted at once, and the cache now refuses the old one
    assert allowed(authorize, refreshed["access_token"])
    assert not allowed(authorize, first["access_token"])


def test_a_token_of_a_user_that_does_not_exist_is_refused(authorize):
    # Given a correctly signed token for an id no account has
    token = access_token("01HZNOSUCHUSER000000000000")

    # When the authorizer runs, then it refuses
    assert not allowed(authorize, token)
