"""Opaque, signed page cursors and the page shape every list endpoint answers with."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from kumo.core.config import get_settings
from kumo.core.errors import BadRequest

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


T = TypeVar("T")


class Page(BaseModel, Generic[T]):  # noqa: UP046 (pydantic generics need Generic)
    items: list[T]
    next_cursor: str | None = None


def _signature(payload: bytes) -> str:
    # Signed so a client cannot hand DynamoDB a start key it was never given.
    key = hashlib.sha256(b"kumo-cursor:" + get_settings().jwt_secret.encode()).digest()
    digest = hmac.new(key, payload, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    payload = json.dumps(last_key, separators=(",", ":"), sort_keys=True).encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{body}.{_signature(payload)}"


def decode_cursor(
    cursor: str | None, *, partition: tuple[str, str] | None = None
) -> dict[str, Any] | None:
    """The start key a cursor stands for. `partition` (attribute, value) pins it to one list:
    a cursor from another list would otherwise reach DynamoDB as an invalid start key."""
    if not cursor:
        return None
    try:
        body, signature = cursor.split(".", 1)
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        genuine = hmac.compare_digest(signature.encode(), _signature(payload).encode())
    except ValueError as error:
        raise BadRequest("The cursor is malformed.", field="cursor") from error
    if not genuine:
        raise BadRequest("The cursor is not one this API issued.", field="cursor")
    key: dict[str, Any] = json.loads(payload)
    if partition is not None and key.get(partition[0]) != {"S": partition[1]}:
        raise BadRequest("The cursor belongs to another list.", field="cursor")
    return key


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}.", field="limit")
    return limit
