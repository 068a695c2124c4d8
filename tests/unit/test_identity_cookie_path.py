"""The refresh cookie is scoped to the auth routes under the prefix the API is served at."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kumo.core.config import get_settings

from tests.support.factories import PASSWORD, unique_email, verified_user
from tests.unit.conftest import FakeContext, api_event, load_handler

pytestmark = pytest.mark.usefixtures("aws")

LOGIN = "/api/v1/auth/login"


def _signed_in_with_cookies(
    load_event: Callable[[str], dict[str, Any]], called_path: str
) -> dict[str, set[str]]:
    email = unique_email("cookie-path")
    verified_user(email)
    event = api_event(
        load_event, "POST", LOGIN, body={"email": email, "password": PASSWORD, "cookie": True}
    )
    event["requestContext"]["path"] = called_path
    response = load_handler("identity/login").lambda_handler(event, FakeContext())
    assert response["statusCode"] == 200, json.loads(response["body"])
    cookies = {}
    for header in response["multiValueHeaders"]["Set-Cookie"]:
        name_value, *attributes = header.split("; ")
        cookies[name_value.split("=", 1)[0]] = set(attributes)
    return cookies


def test_refresh_cookie_on_a_custom_domain_is_under_the_auth_routes(
    load_event: Callable[[str], dict[str, Any]],
) -> None:
    # Given a custom domain mapped at its root: the path as called is the route
    # When signing in with cookies
    cookies = _signed_in_with_cookies(load_event, LOGIN)

    # Then the refresh cookie goes back to the auth routes, the access cookie everywhere
    assert "Path=/api/v1/auth" in cookies["kumo_refresh"]
    assert "Path=/" in cookies["kumo_access"]


def test_refresh_cookie_on_the_local_engine_is_under_its_api_prefix(
    load_event: Callable[[str], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the local engine, which serves the API under /_aws/execute-api/<id>/<stage> and
    # reports the path as AWS's execute-api URL would: the stage, then the route
    monkeypatch.setattr(get_settings(), "api_path_prefix", "/_aws/execute-api/a1b2c3")

    # When signing in with cookies
    cookies = _signed_in_with_cookies(load_event, f"/local{LOGIN}")

    # Then the refresh cookie's path is the one the browser called, up to the auth routes
    assert "Path=/_aws/execute-api/a1b2c3/local/api/v1/auth" in cookies["kumo_refresh"]
