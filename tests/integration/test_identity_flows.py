"""Identity end to end through the local gateway: the flows a client goes through."""

from __future__ import annotations

from tests.integration.conftest import PASSWORD, Api, Outbox, signed_up_user, unique_email


def test_register_verify_login_me_refresh_reuse_logout(api: Api, outbox: Outbox) -> None:
    # Given a new account
    email = unique_email("flow")
    created = api.post(
        "/api/v1/auth/register",
        json={"email": email.upper(), "password": PASSWORD, "display_name": "Flo"},
    )
    assert created.status_code == 201
    assert created.json()["email"] == email

    # When it signs in before verifying, it is told to verify first
    early = api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert early.status_code == 403
    assert early.json()["type"] == "urn:kumo:problem:email-not-verified"

    # When the mailed token is spent, it verifies once and only once
    token = Outbox.token(outbox.wait_for(email, "Confirm"))
    assert api.post("/api/v1/auth/verify-email", json={"token": token}).json()["email_verified"]
    again = api.post("/api/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 400 and again.json()["type"] == "urn:kumo:problem:invalid-token"

    # Then login gives a token pair that reads the profile
    pair = api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()
    me = api.get("/api/v1/users/me", token=pair["access_token"])
    assert me.status_code == 200 and me.json()["email"] == email

    # And refresh rotates the refresh token
    rotated = api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert rotated.status_code == 200
    newest = rotated.json()["refresh_token"]
    assert newest != pair["refresh_token"]

    # When the rotated token is presented again, the whole family is revoked
    reuse = api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert reuse.status_code == 401
    descendant = api.post("/api/v1/auth/refresh", json={"refresh_token": newest})
    assert descendant.status_code == 401

    # And logout ends a fresh session for good
    second = api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()
    out = api.post("/api/v1/auth/logout", json={"refresh_token": second["refresh_token"]})
    assert out.status_code == 204
    after = api.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401


def test_cookie_session_for_browsers(api: Api, outbox: Outbox) -> None:
    # Given a verified user
    user = signed_up_user(api, outbox, "cookie")

    # When it signs in with "cookie": true
    login = api.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD, "cookie": True}
    )
    assert login.status_code == 200
    set_cookies = login.raw.headers.getlist("Set-Cookie")
    access = next(c for c in set_cookies if c.startswith("kumo_access="))
    refresh = next(c for c in set_cookies if c.startswith("kumo_refresh="))
    for cookie in (access, refresh):
        assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    assert "Max-Age=3600" in refresh
    assert "access_token" not in login.json()

    # Then the access cookie alone authenticates through the gateway's authorizer
    access_value = access.split(";", 1)[0]
    me = api.get("/api/v1/users/me", headers={"Cookie": access_value})
    assert me.status_code == 200 and me.json()["email"] == user["email"]

    # And refresh and logout work from the refresh cookie, clearing both cookies
    refresh_value = refresh.split(";", 1)[0]
    renewed = api.post("/api/v1/auth/refresh", json={}, headers={"Cookie": refresh_value})
    assert renewed.status_code == 200
    new_refresh = next(
        c for c in renewed.raw.headers.getlist("Set-Cookie") if c.startswith("kumo_refresh=")
    ).split(";", 1)[0]
    out = api.post("/api/v1/auth/logout", json={}, headers={"Cookie": new_refresh})
    assert out.status_code == 204
    assert all("Max-Age=0" in c for c in out.raw.headers.getlist("Set-Cookie"))


def test_remember_me_keeps_the_refresh_cookie_for_30_days(api: Api, outbox: Outbox) -> None:
    user = signed_up_user(api, outbox, "remember")
    login = api.post(
        "/api/v1/auth/login",
        json={"email": user["email"], "password": PASSWORD, "cookie": True, "remember_me": True},
    )
    refresh = next(
        c for c in login.raw.headers.getlist("Set-Cookie") if c.startswith("kumo_refresh=")
    )
    assert "Max-Age=2592000" in refresh


def test_password_reset_revokes_sessions(api: Api, outbox: Outbox) -> None:
    # Given a signed-in user
    user = signed_up_user(api, outbox, "reset")

    # When they ask for a reset and spend the mailed token
    asked = api.post("/api/v1/auth/password/forgot", json={"email": user["email"]})
    assert asked.status_code == 202
    token = Outbox.token(outbox.wait_for(user["email"], "Reset"))
    new_password = "brand new secret 7"
    done = api.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": new_password}
    )
    assert done.status_code == 204

    # Then the old password and the old refresh token stop working, the new password works
    old = api.post("/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert old.status_code == 401
    stale = api.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert stale.status_code == 401
    fresh = api.post("/api/v1/auth/login", json={"email": user["email"], "password": new_password})
    assert fresh.status_code == 200
    # And the token is single use
    reuse = api.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": "another secret 99"}
    )
    assert reuse.status_code == 400


def test_forgot_password_answers_alike_for_unknown_addresses(api: Api) -> None:
    answer = api.post("/api/v1/auth/password/forgot", json={"email": unique_email("ghost")})
    assert answer.status_code == 202


def test_update_me_changes_the_display_name(api: Api, outbox: Outbox) -> None:
    user = signed_up_user(api, outbox, "rename")
    changed = api.patch(
        "/api/v1/users/me", token=user["access_token"], json={"display_name": "Renamed"}
    )
    assert changed.status_code == 200
    assert (
        api.get("/api/v1/users/me", token=user["access_token"]).json()["display_name"] == "Renamed"
    )


def test_repeated_failures_throttle_the_source_that_guessed(api: Api, outbox: Outbox) -> None:
    # Given a user whose password is guessed wrong five times from one source
    user = signed_up_user(api, outbox, "throttle")
    for _ in range(5):
        wrong = api.post(
            "/api/v1/auth/login", json={"email": user["email"], "password": "nope 12345678"}
        )
        assert wrong.status_code == 401
    # When the right password comes next from that source, it is refused for a while (the
    # owner elsewhere is not: tests/integration/test_abuse_limits.py)
    locked = api.post("/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert locked.headers["Content-Type"] == "application/problem+json"
