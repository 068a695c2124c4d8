"""Rotating the signing keys on the deployed stack signs no one out (ADR 0021): tokens and
cursors signed before a rotation keep working, new ones carry the new key, unknown kids are
refused."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from kumo.core.signing_keys import KeySet, parse_key_set

from infra.keys import default_keep_seconds, rotate, secret_name
from infra.template import ROOT
from tests.integration.conftest import DEADLINE_SECONDS, Api, Outbox, signed_up_user


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def _stored(aws: Any, secret_id: str) -> KeySet:
    return parse_key_set(aws("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])


@pytest.fixture(scope="module")
def jwt_keys(endpoints: dict[str, Any]) -> str:
    return secret_name(endpoints["stage"], "jwt")


def _login(api: Api, user: dict[str, Any]) -> str:
    answer = api.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": user["password"]}
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def _assert_unauthorized(answer: Any) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["type"] == "urn:kumo:problem:unauthorized"


def test_rotation_keeps_old_tokens_and_signs_new_ones_with_the_new_key(
    api: Api, outbox: Outbox, aws: Any, jwt_keys: str
) -> None:
    # Given a signed-in user whose token names the current key
    user = signed_up_user(api, outbox, "rotation")
    old_token = user["access_token"]
    assert _kid(old_token) == _stored(aws, jwt_keys).current

    # When the keys are rotated
    rotated = rotate(aws("secretsmanager"), jwt_keys, keep_seconds=default_keep_seconds())

    # Then the old token still works
    assert api.get("/api/v1/users/me", token=old_token).status_code == 200
    # And a new login's token carries the new kid, once the login function's cache (a few
    # seconds on the local stack) has expired, and is accepted
    deadline = time.monotonic() + DEADLINE_SECONDS
    new_token = _login(api, user)
    while _kid(new_token) != rotated.current and time.monotonic() < deadline:
        time.sleep(0.5)
        new_token = _login(api, user)
    assert _kid(new_token) == rotated.current
    assert api.get("/api/v1/users/me", token=new_token).status_code == 200
    assert api.get("/api/v1/users/me", token=old_token).status_code == 200


def test_token_with_an_unknown_kid_is_refused(
    api: Api, outbox: Outbox, aws: Any, jwt_keys: str
) -> None:
    # Given a token signed with the current key but naming a kid the set does not hold
    user = signed_up_user(api, outbox, "unknown-kid")
    claims = jwt.decode(user["access_token"], options={"verify_signature": False})
    forged = jwt.encode(
        claims, _stored(aws, jwt_keys).current_key, "HS256", headers={"kid": "no-such-kid"}
    )

    # When calling the API with it
    # Then it is refused with the usual 401 problem
    _assert_unauthorized(api.get("/api/v1/users/me", token=forged))


def test_cursor_issued_before_a_cursor_key_rotation_still_pages(
    api: Api, aws: Any, admin_token: str, endpoints: dict[str, Any]
) -> None:
    # Given the first page of the users list and its cursor
    first = api.get("/api/v1/admin/users", token=admin_token, params={"limit": 1}).json()
    assert first["next_cursor"]

    # When the cursor keys are rotated
    cursor_keys = secret_name(endpoints["stage"], "cursor")
    rotate(aws("secretsmanager"), cursor_keys, keep_seconds=default_keep_seconds())

    # Then the cursor still opens the next page
    second = api.get(
        "/api/v1/admin/users",
        token=admin_token,
        params={"limit": 1, "cursor": first["next_cursor"]},
    )
    assert second.status_code == 200, second.text
    assert second.json()["items"][0]["id"] != first["items"][0]["id"]


def test_rotate_command_rotates_the_local_stack(aws: Any, endpoints: dict[str, Any]) -> None:
    # Given the stack's cursor key set
    cursor_keys = secret_name(endpoints["stage"], "cursor")
    before = _stored(aws, cursor_keys)

    # When running the command a developer runs (make rotate-keys), aimed at this engine
    port = urlsplit(endpoints["gateway"]).port
    command = [sys.executable, "-m", "infra.keys", "rotate", "--stage", endpoints["stage"]]
    ran = subprocess.run(  # noqa: S603
        [*command, "--port", str(port), "--which", "cursor"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then the set has a new current kid, the old one is kept, and only kids were printed
    assert ran.returncode == 0, ran.stderr
    after = _stored(aws, cursor_keys)
    assert after.current != before.current
    assert after.key(before.current) == before.current_key
    assert after.current in ran.stdout
    assert all(key not in ran.stdout for key in after.keys.values())
