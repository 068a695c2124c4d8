"""Misused refresh tokens at the authorizer; admin routes refuse callers without the admin
role, or without any principal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kumo.core.errors import Unauthorized
from kumo.identity import service, tokens

from tests.support.factories import PASSWORD, principal_for

USER_ID = "01HZSECURITYTESTUSER000002"


# --- misused credentials ------------------------------------------------------------------


@pytest.fixture
def refresh_token(aws: None, call_api: Callable[..., dict[str, Any]]) -> str:
    email = "security-refresh@example.com"
    service.register(email=email, password=PASSWORD, display_name="Eve", verified=True)
    response = call_api(
        "identity/login", "POST", "/api/v1/auth/login", body={"email": email, "password": PASSWORD}
    )
    return str(response["json"]["refresh_token"])


def test_decode_access_token_refuses_refresh_token(refresh_token):
    # Given a genuine refresh token
    # When decoding it as an access token
    # Then it is refused
    with pytest.raises(Unauthorized):
        tokens.decode_access_token(refresh_token)


def test_authorizer_refuses_refresh_token_as_bearer(authorize, refresh_token):
    # Given a genuine refresh token presented as bearer
    headers = {"Authorization": f"Bearer {refresh_token}"}

    # When the authorizer runs
    # Then it is refused
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(headers)


# --- authorization of admin routes --------------------------------------------------------

ADMIN_ROUTES = {
    "list-users": {
        "function": "identity/admin_list_users",
        "method": "GET",
        "path": "/api/v1/admin/users",
    },
    "update-user": {
        "function": "identity/admin_update_user",
        "method": "PATCH",
        "path": f"/api/v1/admin/users/{USER_ID}",
        "resource": "/api/v1/admin/users/{user_id}",
        "path_parameters": {"user_id": USER_ID},
        "body": {"role": "admin"},
    },
    "audit": {"function": "identity/admin_audit", "method": "GET", "path": "/api/v1/admin/audit"},
}


def call_route(call_api: Callable[..., dict[str, Any]], route: dict[str, Any], **extra: Any):
    kwargs = {k: v for k, v in route.items() if k not in ("function", "method", "path")}
    return call_api(route["function"], route["method"], route["path"], **kwargs, **extra)


@pytest.mark.parametrize("route", ADMIN_ROUTES.values(), ids=ADMIN_ROUTES.keys())
def test_admin_route_refuses_user_role(call_api, route):
    # Given a signed-in caller who is not an admin
    principal = principal_for("01HZSECURITYTESTCALLER0001", "user")

    # When calling an admin route
    response = call_route(call_api, route, principal=principal)

    # Then it is a 403 problem
    assert response["statusCode"] == 403
    assert response["multiValueHeaders"]["Content-Type"] == ["application/problem+json"]
    assert response["json"]["type"] == "urn:kumo:problem:forbidden"


@pytest.mark.parametrize("route", ADMIN_ROUTES.values(), ids=ADMIN_ROUTES.keys())
def test_admin_route_refuses_request_without_principal(call_api, route):
    # Given a request that reached the function without an authorizer context
    # When calling an admin route
    response = call_route(call_api, route)

    # Then it is a 401 problem
    assert response["statusCode"] == 401
    assert response["multiValueHeaders"]["Content-Type"] == ["application/problem+json"]
    assert response["json"]["type"] == "urn:kumo:problem:unauthorized"


@pytest.mark.usefixtures("aws")
def test_admin_update_user_by_tutor_changes_nothing(call_api):
    # Given a plain user and a tutor who is not an admin
    target = service.register(
        email="security-target@example.com", password=PASSWORD, display_name="T", verified=True
    )
    route = ADMIN_ROUTES["update-user"] | {
        "path": f"/api/v1/admin/users/{target.user_id}",
        "path_parameters": {"user_id": target.user_id},
    }

    # When the tutor tries to make the user an admin
    call_route(call_api, route, principal=principal_for("01HZSECURITYTESTTUTOR00001", "tutor"))

    # Then the user's role is unchanged
    assert service.get_user(target.user_id).role == "user"
