"""Browsers refresh and log out with the session cookie alone, sending no body."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("aws")

COOKIE = {"Cookie": "kumo_refresh=not-a-token-this-api-issued"}


def test_logout_cookie_only_without_body_answers_204(call_api: Any) -> None:
    # Given a browser that sends only its refresh cookie
    # When it logs out without a body
    answer = call_api("identity/logout", "POST", "/api/v1/auth/logout", headers=COOKIE)
    # Then the logout succeeds (idempotent for an unknown token) and clears the cookies
    assert answer["statusCode"] == 204


def test_refresh_cookie_only_without_body_checks_the_cookie(call_api: Any) -> None:
    # Given a browser whose refresh cookie holds an unknown token
    # When it refreshes without a body
    answer = call_api("identity/refresh", "POST", "/api/v1/auth/refresh", headers=COOKIE)
    # Then the cookie is what gets checked: 401, not a 422 about a missing body
    assert answer["statusCode"] == 401
    assert answer["json"]["type"] == "urn:kumo:problem:unauthorized"
