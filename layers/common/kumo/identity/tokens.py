"""Access JWTs (HS256, short-lived) and opaque one-time and refresh tokens (stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import jwt

from kumo.core import clock
from kumo.core.config import get_settings
from kumo.core.errors import Unauthorized
from kumo.core.ids import new_id

ISSUER = "kumo"
AUDIENCE = "kumo-api"
ALGORITHM = "HS256"


def new_opaque_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_access_token(*, user_id: str, email: str, role: str) -> str:
    issued = int(clock.now())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user_id,
        "email": email,
        "role": role,
        "typ": "access",
        "iat": issued,
        "exp": issued + get_settings().access_token_seconds,
        "jti": new_id(),
    }
    return jwt.encode(claims, get_settings().jwt_secret, algorithm=ALGORITHM)


def decode_access_token(token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            get_settings().jwt_secret,
            algorithms=[ALGORITHM],  # a fixed list: "none" and key confusion are refused
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.PyJWTError as error:
        raise Unauthorized("The access token is invalid or expired.") from error
    if claims.get("typ") != "access" or not isinstance(claims.get("role"), str):
        raise Unauthorized("The access token is invalid or expired.")
    return claims
