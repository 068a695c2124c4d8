"""Request authentication for the API authorizer: kept free of PynamoDB and hashing so the
authorizer, which runs before every authenticated request, imports little. Identity reads the
credential and checks user tokens; a device key it leaves to the devices context, which
builds on identity (the authorizer function asks both, docs/adr/0020)."""

from __future__ import annotations

from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie

from kumo.core.errors import Unauthorized
from kumo.core.principal import Principal
from kumo.identity import sessions, tokens

ACCESS_COOKIE = "kumo_access"
REFRESH_COOKIE = "kumo_refresh"


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def read_cookie(headers: Mapping[str, str], name: str) -> str:
    raw = _header(headers, "cookie")
    if not raw:
        return ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return ""
    morsel = jar.get(name)
    return morsel.value if morsel else ""


def credential(headers: Mapping[str, str]) -> str:
    """The bearer token, or the session cookie without an Authorization header: a user's JWT
    or a device API key. Anything else is refused."""
    authorization = _header(headers, "authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Use the Bearer scheme.")
    else:
        token = read_cookie(headers, ACCESS_COOKIE)
    if not token:
        raise Unauthorized("Missing credentials.")
    return token.strip()


def user_principal(token: str) -> Principal:
    claims = tokens.decode_access_token(token)
    sessions.require_current(str(claims["sub"]), claims["sep"])
    return Principal(
        kind="user",
        subject_id=str(claims["sub"]),
        roles=(str(claims["role"]),),
        email=str(claims.get("email", "")),
    )


def handshake_credential(headers: Mapping[str, str], query: Mapping[str, str] | None) -> str:
    """A WebSocket handshake: the same credentials, or `?token=<access token>` for browsers,
    whose WebSocket API cannot set headers (and whose cookie only reaches the API's own
    domain). A header, when present, wins."""
    token = (query or {}).get("token", "")
    if token and not _header(headers, "authorization"):
        headers = {**headers, "authorization": f"Bearer {token}"}
    return credential(headers)
