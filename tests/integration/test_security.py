"""Forged credentials and privilege escalation, refused by the deployed authorizer and handlers."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from kumo.core.signing_keys import parse_key_set

from infra.keys import secret_name
from tests.integration.conftest import Api, Outbox, signed_up_user


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _claims(user_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "kumo",
        "aud": "kumo-api",
        "sub": user_id,
        "email": "x@example.com",
        "role": "user",
        "typ": "access",
        "iat": now,
        "exp": now + 600,
        "jti": "t",
    }
    claims.update(changes)
    return claims


@pytest.fixture(scope="module")
def victim(api: Api, outbox: Outbox) -> dict[str, Any]:
    return signed_up_user(api, outbox, "victim")


@pytest.fixture(scope="module")
def stack_key(aws: Any, endpoints: dict[str, Any]) -> tuple[str, str]:
    """(kid, key) of the stack's current access-token key, from the engine's Secrets Manager."""
    secret_id = secret_name(endpoints["stage"], "jwt")
    stored = aws("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    keys = parse_key_set(stored)
    return keys.current, keys.current_key


def _assert_refused(api: Api, token: str, path: str = "/api/v1/users/me") -> None:
    answer = api.get(path, token=token)
    assert answer.status_code == 401, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["type"] == "urn:kumo:problem:unauthorized"


def test_alg_none_is_refused(api: Api, victim: dict[str, Any]) -> None:
    forged = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(victim['id']))}."
    _assert_refused(api, forged)


def test_wrong_key_is_refused(api: Api, victim: dict[str, Any]) -> None:
    forged = jwt.encode(_claims(victim["id"]), "an attacker's key of sufficient length!!", "HS256")
    _assert_refused(api, forged)


def test_expired_token_is_refused(
    api: Api, victim: dict[str, Any], stack_key: tuple[str, str]
) -> None:
    kid, key = stack_key
    past = int(time.time()) - 3600
    claims = _claims(victim["id"], iat=past - 900, exp=past)
    expired = jwt.encode(claims, key, "HS256", headers={"kid": kid})
    _assert_refused(api, expired)


def test_tampered_claims_are_refused(api: Api, victim: dict[str, Any]) -> None:
    header, _, signature = victim["access_token"].split(".")
    claims = jwt.decode(victim["access_token"], options={"verify_signature": False})
    claims["role"] = "admin"
    _assert_refused(api, f"{header}.{_b64(claims)}.{signature}", "/api/v1/admin/users")


def test_refresh_token_is_not_an_access_token(api: Api, victim: dict[str, Any]) -> None:
    _assert_refused(api, victim["refresh_token"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/admin/users"),
        ("GET", "/api/v1/admin/audit"),
        ("PATCH", "/api/v1/admin/users/01M80A6CNH79PB2K694MXBP2YG"),
    ],
)
def test_plain_user_cannot_reach_admin_routes(
    api: Api, victim: dict[str, Any], method: str, path: str
) -> None:
    answer = api.call(method, path, token=victim["access_token"], json={"role": "admin"})
    assert answer.status_code == 403
    assert answer.json()["type"] == "urn:kumo:problem:forbidden"
