"""POST /api/v1/auth/login, /api/v1/auth/refresh and /api/v1/auth/logout."""

from __future__ import annotations

from typing import Any

import pytest
from kumo.core import clock
from kumo.identity import tokens
from kumo.identity.models import RefreshTokenModel, refresh_key

from tests.support.factories import PASSWORD, unique_email, verified_user

pytestmark = pytest.mark.usefixtures("aws")

LOGIN = ("identity/login", "POST", "/api/v1/auth/login")
REFRESH = ("identity/refresh", "POST", "/api/v1/auth/refresh")
LOGOUT = ("identity/logout", "POST", "/api/v1/auth/logout")
THIRTY_DAYS = 30 * 24 * 3600


def login_body(email: str, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    return {"email": email, "password": password, **extra}


def set_cookies(response: dict[str, Any]) -> dict[str, tuple[str, set[str]]]:
    """Set-Cookie headers as name -> (value, attributes)."""
    cookies = {}
    for header in response["multiValueHeaders"]["Set-Cookie"]:
        pair, *attributes = header.split("; ")
        name, value = pair.split("=", 1)
        cookies[name] = (value, set(attributes))
    return cookies


def freeze_clock(monkeypatch: Any, at: float) -> None:
    monkeypatch.setattr(clock, "now", lambda: at)


# --- login --------------------------------------------------------------------------------


def test_login_answers_token_pair(call_api):
    # Given a verified account
    email = unique_email("pair")
    user_id = verified_user(email)

    # When signing in
    response = call_api(*LOGIN, body=login_body(email))

    # Then the body is a bearer pair whose access token names the user, and is not cached
    assert response["statusCode"] == 200
    body = response["json"]
    assert (body["token_type"], body["expires_in"], body["refresh_expires_in"]) == (
        "Bearer",
        900,
        3600,
    )
    claims = tokens.decode_access_token(body["access_token"])
    assert (claims["sub"], claims["email"], claims["role"]) == (user_id, email, "user")
    assert response["multiValueHeaders"]["Cache-Control"] == ["no-store"]
    assert "Set-Cookie" not in response["multiValueHeaders"]


def test_login_refuses_wrong_password(call_api):
    # Given a verified account
    email = unique_email("wrong")
    verified_user(email)

    # When signing in with another password
    response = call_api(*LOGIN, body=login_body(email, "not the password 1"))

    # Then it is a 401 problem
    assert response["statusCode"] == 401
    assert response["json"]["type"] == "urn:kumo:problem:unauthorized"


def test_login_refuses_unknown_email_with_same_detail(call_api):
    # Given the answer to a wrong password for an existing account
    email = unique_email("known")
    verified_user(email)
    wrong_password = call_api(*LOGIN, body=login_body(email, "not the password 1"))

    # When signing in with an address nobody uses
    unknown = call_api(*LOGIN, body=login_body(unique_email("nobody")))

    # Then both answers are indistinguishable
    assert unknown["statusCode"] == 401
    assert unknown["json"]["detail"] == wrong_password["json"]["detail"]
    assert unknown["json"]["type"] == wrong_password["json"]["type"]


def test_login_with_cookie_sets_http_only_session_cookies(call_api):
    # Given a verified account
    email = unique_email("cookie")
    verified_user(email)

    # When signing in with "cookie": true
    response = call_api(*LOGIN, body=login_body(email, cookie=True))

    # Then both tokens travel as HTTP-only, secure, same-site cookies
    assert response["statusCode"] == 200
    cookies = set_cookies(response)
    assert set(cookies) == {"kumo_access", "kumo_refresh"}
    access, access_attributes = cookies["kumo_access"]
    assert tokens.decode_access_token(access)["email"] == email
    assert access_attributes == {"Path=/", "Max-Age=900", "HttpOnly", "Secure", "SameSite=Lax"}
    assert cookies["kumo_refresh"][1] == {
        "Path=/prod/api/v1/auth",  # the stage first: the execute-api URL (api/request.json)
        "Max-Age=3600",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
    }


def test_login_with_cookie_keeps_tokens_out_of_body(call_api):
    # Given a verified account
    email = unique_email("cookie-body")
    user_id = verified_user(email)

    # When signing in with "cookie": true
    response = call_api(*LOGIN, body=login_body(email, cookie=True))

    # Then the body describes the session but holds no token
    assert set(response["json"]) == {"user", "expires_in"}
    assert response["json"]["user"]["id"] == user_id
    for value, _ in set_cookies(response).values():
        assert value not in response["body"]


def test_login_with_cookie_and_remember_me_keeps_refresh_cookie_30_days(call_api):
    # Given a verified account
    email = unique_email("remember")
    verified_user(email)

    # When signing in with cookies and remember_me
    response = call_api(*LOGIN, body=login_body(email, cookie=True, remember_me=True))

    # Then the refresh cookie lives 30 days, the access cookie still 15 minutes
    cookies = set_cookies(response)
    assert f"Max-Age={THIRTY_DAYS}" in cookies["kumo_refresh"][1]
    assert "Max-Age=900" in cookies["kumo_access"][1]


# --- refresh ------------------------------------------------------------------------------


def signed_in(call_api: Any, label: str, **extra: Any) -> dict[str, Any]:
    email = unique_email(label)
    verified_user(email)
    response = call_api(*LOGIN, body=login_body(email, **extra))
    assert response["statusCode"] == 200
    return response


def stored_refresh_token(raw: str) -> RefreshTokenModel:
    return RefreshTokenModel.get(refresh_key(tokens.hash_token(raw)), "REFRESH")


def test_refresh_rotates_refresh_token(call_api):
    # Given a session
    old = signed_in(call_api, "rotate")["json"]["refresh_token"]

    # When refreshing it
    response = call_api(*REFRESH, body={"refresh_token": old})

    # Then a different refresh token comes back and the old one is marked rotated
    assert response["statusCode"] == 200
    new = response["json"]["refresh_token"]
    assert new != old
    assert stored_refresh_token(old).rotated is True
    assert stored_refresh_token(new).rotated is False


def test_refresh_keeps_remember_me_lifetime(call_api):
    # Given a remembered session
    old = signed_in(call_api, "remembered", remember_me=True)["json"]["refresh_token"]

    # When refreshing it
    response = call_api(*REFRESH, body={"refresh_token": old})

    # Then the new refresh token lasts 30 days too
    assert response["json"]["refresh_expires_in"] == THIRTY_DAYS


def test_refresh_refuses_reused_rotated_token(call_api):
    # Given a refresh token that was already rotated
    old = signed_in(call_api, "reuse")["json"]["refresh_token"]
    call_api(*REFRESH, body={"refresh_token": old})

    # When presenting it again
    response = call_api(*REFRESH, body={"refresh_token": old})

    # Then it is refused
    assert response["statusCode"] == 401
    assert response["json"]["type"] == "urn:kumo:problem:unauthorized"


def test_refresh_reuse_revokes_newest_descendant(call_api):
    # Given a rotated token and the token that replaced it
    old = signed_in(call_api, "family")["json"]["refresh_token"]
    newest = call_api(*REFRESH, body={"refresh_token": old})["json"]["refresh_token"]

    # When the old one is replayed
    call_api(*REFRESH, body={"refresh_token": old})

    # Then the whole family is revoked: the newest token stops working too
    assert call_api(*REFRESH, body={"refresh_token": newest})["statusCode"] == 401


def test_refresh_via_cookie_answers_with_cookies(call_api):
    # Given a cookie session
    login = signed_in(call_api, "cookie-refresh", cookie=True)
    old = set_cookies(login)["kumo_refresh"][0]

    # When refreshing with only the cookie
    response = call_api(*REFRESH, body={}, headers={"Cookie": f"kumo_refresh={old}"})

    # Then new cookies come back, not tokens in the body
    assert response["statusCode"] == 200
    cookies = set_cookies(response)
    assert set(cookies) == {"kumo_access", "kumo_refresh"}
    assert cookies["kumo_refresh"][0] != old
    assert "refresh_token" not in response["json"]
    assert stored_refresh_token(old).rotated is True


def test_refresh_refuses_expired_token(call_api, monkeypatch):
    # Given a session whose refresh token outlived its hour
    old = signed_in(call_api, "expired")["json"]["refresh_token"]
    later = clock.now() + 3600 + 1
    freeze_clock(monkeypatch, later)

    # When refreshing it
    response = call_api(*REFRESH, body={"refresh_token": old})

    # Then it is refused
    assert response["statusCode"] == 401


def test_refresh_refuses_request_without_token(call_api):
    # Given neither a body token nor a cookie
    # When refreshing
    response = call_api(*REFRESH, body={})

    # Then it is refused
    assert response["statusCode"] == 401


# --- logout -------------------------------------------------------------------------------


def test_logout_revokes_token_family(call_api):
    # Given a session
    refresh_token = signed_in(call_api, "logout")["json"]["refresh_token"]

    # When logging out with its refresh token
    response = call_api(*LOGOUT, body={"refresh_token": refresh_token})

    # Then it answers 204 and the token no longer refreshes
    assert response["statusCode"] == 204
    assert call_api(*REFRESH, body={"refresh_token": refresh_token})["statusCode"] == 401


def test_logout_via_cookie_revokes_token_family(call_api):
    # Given a cookie session
    refresh_token = set_cookies(signed_in(call_api, "logout-cookie", cookie=True))["kumo_refresh"][
        0
    ]

    # When logging out with only the cookie
    call_api(*LOGOUT, body={}, headers={"Cookie": f"kumo_refresh={refresh_token}"})

    # Then the token no longer refreshes
    assert call_api(*REFRESH, body={"refresh_token": refresh_token})["statusCode"] == 401


def test_logout_clears_both_cookies(call_api):
    # Given a cookie session
    refresh_token = set_cookies(signed_in(call_api, "clear", cookie=True))["kumo_refresh"][0]

    # When logging out
    response = call_api(*LOGOUT, body={}, headers={"Cookie": f"kumo_refresh={refresh_token}"})

    # Then both cookies are emptied and expire now, on the paths they were set on
    cookies = set_cookies(response)
    assert cookies == {
        "kumo_access": ("", {"Path=/", "Max-Age=0", "HttpOnly", "Secure", "SameSite=Lax"}),
        "kumo_refresh": (
            "",
            {"Path=/prod/api/v1/auth", "Max-Age=0", "HttpOnly", "Secure", "SameSite=Lax"},
        ),
    }


def test_logout_with_unknown_token_is_no_content(call_api):
    # Given a refresh token this API never issued
    unknown = tokens.new_opaque_token()

    # When logging out with it
    response = call_api(*LOGOUT, body={"refresh_token": unknown})

    # Then logging out still succeeds
    assert response["statusCode"] == 204
