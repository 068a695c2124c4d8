"""Forged, expired and misdirected access tokens, and other schemes, are refused both by the
authorizer and by kumo.identity.tokens.decode_access_token."""

from __future__ import annotations

import base64
import json
import time
import warnings
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning
from kumo.core.errors import Unauthorized
from kumo.identity import tokens

from tests.support.aws import SIGNING_KEYS

USER_ID = "01HZSECURITYTESTUSER000001"
EMAIL = "security-test@example.com"
PASSWORD = "correct horse 42"


# --- forged access tokens -----------------------------------------------------------------


def claims(**overrides: Any) -> dict[str, Any]:
    """The claims the API itself would issue, minus whatever a test overrides."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": "kumo",
        "aud": "kumo-api",
        "sub": USER_ID,
        "email": EMAIL,
        "role": "user",
        "typ": "access",
        "iat": now,
        "exp": now + 900,
        "jti": "01HZSECURITYTESTJTI0000001",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


TEST_KEYS = json.loads(SIGNING_KEYS["jwt-keys"])
CURRENT_KID = TEST_KEYS["current"]


def sign(
    payload: dict[str, Any],
    *,
    key: str | None = None,
    kid: str | None = CURRENT_KID,
    algorithm: str = "HS256",
) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, key or TEST_KEYS[CURRENT_KID], algorithm=algorithm, headers=headers)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def unsigned() -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims(role='admin'))}."


def wrong_key() -> str:
    return sign(claims(), key="an-attacker-secret-that-is-long-enough-000")


def expired() -> str:
    now = int(time.time())
    return sign(claims(iat=now - 3600, exp=now - 60))


def role_escalated() -> str:
    genuine = tokens.issue_access_token(user_id=USER_ID, email=EMAIL, role="user", session_epoch=0)
    header, payload, signature = genuine.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered["role"] = "admin"
    return f"{header}.{_b64(tampered)}.{signature}"


def wrong_audience() -> str:
    return sign(claims(aud="some-other-api"))


def wrong_issuer() -> str:
    return sign(claims(iss="someone-else"))


def other_algorithm() -> str:
    with warnings.catch_warnings():
        # The test secret is short for HS512; the point is only that HS512 is not accepted.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return sign(claims(), algorithm="HS512")


def unknown_kid() -> str:
    # The right key, but a kid the key set does not hold.
    return sign(claims(), kid="20990101T000000Z-ffff")


def without_kid() -> str:
    return sign(claims(), kid=None)


def not_an_access_token() -> str:
    return sign(claims(typ="verify"))


def without_expiry() -> str:
    return sign(claims(exp=None))


FORGERIES: dict[str, Callable[[], str]] = {
    "alg-none": unsigned,
    "wrong-key": wrong_key,
    "expired": expired,
    "role-escalated": role_escalated,
    "wrong-audience": wrong_audience,
    "wrong-issuer": wrong_issuer,
    "hs512": other_algorithm,
    "unknown-kid": unknown_kid,
    "no-kid": without_kid,
    "wrong-typ": not_an_access_token,
    "no-exp": without_expiry,
}


def test_decode_access_token_accepts_the_unforged_claims():
    # Given a token signed the API's way with the same claims the forgeries start from
    token = sign(claims())

    # When decoding it
    decoded = tokens.decode_access_token(token)

    # Then it is accepted, so every refusal below is due to its one forged part
    assert (decoded["sub"], decoded["role"]) == (USER_ID, "user")


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_decode_access_token_refuses_forged_token(forge):
    # Given a forged, expired or misdirected token
    token = forge()

    # When decoding it
    # Then it is refused as unauthorized
    with pytest.raises(Unauthorized):
        tokens.decode_access_token(token)


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_authorizer_refuses_forged_bearer(authorize, forge):
    # Given a forged, expired or misdirected token as bearer
    headers = {"Authorization": f"Bearer {forge()}"}

    # When the authorizer runs
    # Then it is refused with the message API Gateway maps to 401
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(headers)


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_authorizer_refuses_forged_cookie(authorize, forge):
    # Given a forged, expired or misdirected token in the access cookie
    headers = {"Cookie": f"kumo_access={forge()}"}

    # When the authorizer runs
    # Then it is refused
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(headers)


# --- other schemes ------------------------------------------------------------------------


def test_authorizer_refuses_basic_scheme(authorize):
    # Given a valid access token sent under the Basic scheme
    token = tokens.issue_access_token(user_id=USER_ID, email=EMAIL, role="user", session_epoch=0)
    headers = {"Authorization": f"Basic {token}"}

    # When the authorizer runs
    # Then it is refused: only Bearer is accepted
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(headers)


def test_decode_access_token_refuses_basic_credentials():
    # Given the credentials part of a Basic header
    credentials = base64.b64encode(f"{EMAIL}:{PASSWORD}".encode()).decode()

    # When decoding it as an access token
    # Then it is refused
    with pytest.raises(Unauthorized):
        tokens.decode_access_token(credentials)


def test_authorizer_refuses_bearer_without_token(authorize):
    # Given a bearer header with nothing after the scheme
    # When the authorizer runs
    # Then it is refused, even though a valid cookie could have been sent
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize({"Authorization": "Bearer   "})
