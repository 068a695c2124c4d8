"""Access JWTs (HS256, short-lived, `kid` in the header) and opaque one-time and refresh tokens
(stored hashed).

The signing key set lives in Secrets Manager (kumo.core.signing_keys, ADR 0021): a token is
signed with the current key and checked with the key its `kid` names, so a rotation signs no
one out. Only the functions that mint or verify access tokens may read it.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import jwt

from kumo.core import clock, signing_keys
from kumo.core.config import get_settings
from kumo.core.errors import Unauthorized
from kumo.core.ids import new_id

ISSUER = "kumo"
AUDIENCE = "kumo-api"
ALGORITHM = "HS256"


_INVALID = "The access token is invalid or expired."


def _key_set(unknown_kid: str | None = None) -> signing_keys.KeySet:
    return signing_keys.load(get_settings().jwt_key_secret_id, unknown_kid=unknown_kid)


def _verification_key(token: str) -> str:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as error:
        raise Unauthorized(_INVALID) from error
    if not isinstance(kid, str) or not kid:
        raise Unauthorized(_INVALID)
    key = _key_set().key(kid)
    if key is None:
        # Perhaps signed after a rotation this container has not read yet.
        key = _key_set(unknown_kid=kid).key(kid)
    if key is None:
        raise Unauthorized(_INVALID)
    return key


def new_opaque_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_access_token(*, user_id: str, email: str, role: str, session_epoch: int) -> str:
    issued = int(clock.now())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user_id,
        "email": email,
        "role": role,
        # The user's session epoch now: raising it ends this token (kumo.identity.sessions).
        "sep": session_epoch,
        "typ": "access",
        "iat": issued,
        "exp": issued + get_settings().access_token_seconds,
        "jti": new_id(),
    }
    keys = _key_set()
    return jwt.encode(claims, keys.current_key, algorithm=ALGORITHM, headers={"kid": keys.current})


def decode_access_token(token: str) -> dict[str, Any]:
    key = _verification_key(token)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],  # a fixed list: "none" and key confusion are refused
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.PyJWTError as error:
        raise Unauthorized(_INVALID) from error
    if claims.get("typ") != "access" or not isinstance(claims.get("role"), str):
        raise Unauthorized(_INVALID)
    # Tokens issued before epochs existed carry none: epoch 0, ended by the first raise.
    if type(claims.setdefault("sep", 0)) is not int:
        raise Unauthorized(_INVALID)
    return claims
