"""A browser's session on the local stack: cookies set at login come back where they should."""

from __future__ import annotations

from http.cookiejar import DefaultCookiePolicy

import requests

from tests.integration.conftest import Api, Outbox, signed_up_user


def _browser() -> requests.Session:
    """A client that keeps cookies as a browser does: by domain and path. Browsers treat
    http://127.0.0.1 as a secure context and send Secure cookies to it; so does this one."""
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(secure_protocols=("https", "wss", "http")))
    return session


def test_refresh_with_only_the_session_cookie_rotates_the_session(api: Api, outbox: Outbox) -> None:
    # Given a user signed in with cookies, from a browser
    user = signed_up_user(api, outbox, "cookie-refresh")
    browser = _browser()
    login = browser.post(
        f"{api.base}/api/v1/auth/login",
        json={"email": user["email"], "password": user["password"], "cookie": True},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    refresh_before = browser.cookies.get("kumo_refresh")
    assert refresh_before

    # When it refreshes sending no body: only what its cookie jar sends to that URL
    refreshed = browser.post(f"{api.base}/api/v1/auth/refresh", timeout=30)

    # Then the refresh cookie was sent and rotated, and the new access cookie works
    assert refreshed.status_code == 200, refreshed.text
    assert browser.cookies.get("kumo_refresh") not in (None, refresh_before)
    me = browser.get(f"{api.base}/api/v1/users/me", timeout=30)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == user["email"]


def test_the_refresh_cookie_is_not_sent_outside_the_auth_routes(api: Api, outbox: Outbox) -> None:
    # Given a user signed in with cookies, from a browser
    user = signed_up_user(api, outbox, "cookie-scope")
    browser = _browser()
    login = browser.post(
        f"{api.base}/api/v1/auth/login",
        json={"email": user["email"], "password": user["password"], "cookie": True},
        timeout=30,
    )
    assert login.status_code == 200, login.text

    # When the browser calls a route outside /api/v1/auth
    sent = browser.prepare_request(requests.Request("GET", f"{api.base}/api/v1/users/me"))

    # Then it sends the access cookie there, and keeps the refresh token to itself
    cookie_header = sent.headers.get("Cookie", "")
    assert "kumo_access=" in cookie_header
    assert "kumo_refresh=" not in cookie_header
