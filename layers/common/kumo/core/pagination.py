"""Opaque, signed page cursors and the page shape every list endpoint answers with."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from kumo.core import signing_keys
from kumo.core.config import get_settings
from kumo.core.errors import BadRequest

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


T = TypeVar("T")


class Page(BaseModel, Generic[T]):  # noqa: UP046 (pydantic generics need Generic)
    items: list[T]
    next_cursor: str | None = None


def cursor_keys() -> signing_keys.KeySet:
    """The cursor key set (a secret of its own, not the token key: ADR 0021)."""
    return signing_keys.load(get_settings().cursor_key_secret_id)


def _signature(payload: bytes, key: str) -> str:
    # Signed so a client cannot hand DynamoDB a start key it was never given.
    digest = hmac.new(key.encode(), payload, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _genuine(payload: bytes, signature: str) -> bool:
    """Signed by any key of the set: a cursor made just before a rotation still pages on."""
    given = signature.encode()
    # Every key is tried, so the time taken does not tell which one matched.
    matches = [
        hmac.compare_digest(given, _signature(payload, key).encode())
        for key in cursor_keys().keys.values()
    ]
    return any(matches)


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    payload = json.dumps(last_key, separators=(",", ":"), sort_keys=True).encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{body}.{_signature(payload, cursor_keys().current_key)}"


def decode_cursor(
    cursor: str | None,
    *,
    partition: tuple[str, str] | None = None,
    sort_prefix: tuple[str, str] | None = None,
) -> dict[str, Any] | None:
    """The start key a cursor stands for. `partition` (attribute, value) pins it to one list:
    a cursor from another list would otherwise reach DynamoDB as an invalid start key.
    `sort_prefix` (attribute, prefix) does the same for lists that share a partition."""
    if not cursor:
        return None
    try:
        body, signature = cursor.split(".", 1)
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError as error:
        raise BadRequest("The cursor is malformed.", field="cursor") from error
    if not _genuine(payload, signature):
        raise BadRequest("The cursor is not one this API issued.", field="cursor")
    key: dict[str, Any] = json.loads(payload)
    if partition is not None and key.get(partition[0]) != {"S": partition[1]}:
        raise BadRequest("The cursor belongs to another list.", field="cursor")
    if sort_prefix is not None and not str(key.get(sort_prefix[0], {}).get("S", "")).startswith(
        sort_prefix[1]
    ):
        raise BadRequest("The cursor belongs to another list.", field="cursor")
    return key


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}.", field="limit")
    return limit
