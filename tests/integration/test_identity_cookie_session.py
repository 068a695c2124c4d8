"""A browser's session on the local stack: cookies set at login come back where they should."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

from tests.integration.conftest import Api, Outbox, signed_up_user


class Browser:
    """Keeps cookies as a browser does, by domain and path (http.cookiejar). Browsers treat
    http://127.0.0.1 as a secure context and send Secure cookies to it; so does this one."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = CookieJar(DefaultCookiePolicy(secure_protocols=("https", "wss", "http")))
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.sent: dict[str, str] = {}  # path -> the Cookie header sent there

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 (the local stack, http://127.0.0.1)
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        try:
            with self.opener.open(request, timeout=60) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        self.sent[path] = request.get_header("Cookie") or ""
        return status, json.loads(raw) if raw else None

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)


def _signed_in_browser(api: Api, outbox: Outbox, label: str) -> tuple[Browser, dict[str, Any]]:
    user = signed_up_user(api, outbox, label)
    browser = Browser(api.base)
    status, body = browser.call(
        "POST",
        "/api/v1/auth/login",
        {"email": user["email"], "password": user["password"], "cookie": True},
    )
    assert status == 200, body
    return browser, user


def test_refresh_with_only_the_session_cookie_rotates_the_session(api: Api, outbox: Outbox) -> None:
    # Given a user signed in with cookies, from a browser
    browser, user = _signed_in_browser(api, outbox, "cookie-refresh")
    refresh_before = browser.cookie("kumo_refresh")
    assert refresh_before

    # When it refreshes sending no body: only what its cookie jar sends to that URL
    status, body = browser.call("POST", "/api/v1/auth/refresh")

    # Then the refresh cookie was sent and rotated, and the new access cookie works
    assert status == 200, body
    assert browser.cookie("kumo_refresh") not in (None, refresh_before)
    status, me = browser.call("GET", "/api/v1/users/me")
    assert status == 200, me
    assert me["email"] == user["email"]


def test_the_refresh_cookie_is_not_sent_outside_the_auth_routes(api: Api, outbox: Outbox) -> None:
    # Given a user signed in with cookies, from a browser
    browser, _ = _signed_in_browser(api, outbox, "cookie-scope")

    # When the browser calls a route outside /api/v1/auth
    status, _ = browser.call("GET", "/api/v1/users/me")

    # Then it sent the access cookie there, and kept the refresh token to itself
    assert status == 200
    assert "kumo_access=" in browser.sent["/api/v1/users/me"]
    assert "kumo_refresh=" not in browser.sent["/api/v1/users/me"]
