"""Is the session behind an access token still current? Asked by the authorizer on every user
request, so a deactivation, a role change or a new password ends access tokens within
CACHE_SECONDS instead of at their expiry (ADR 27).

Every access token carries the user's session epoch (`sep`) from when it was issued; those
events raise the epoch on the user's item. The authorizer reads the item's `active` and
`session_epoch` once per user per container and CACHE_SECONDS, so a busy user costs one read a
minute, not one a request. Low-level client and spelled-out key: no PynamoDB in the authorizer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from kumo.core.config import get_settings
from kumo.core.errors import Unauthorized

CACHE_SECONDS: Final = 60.0
# A container that has seen this many users starts its cache again rather than grow.
_MAX_CACHED: Final = 10_000
EPOCH_CLAIM: Final = "sep"


@dataclass(frozen=True, slots=True)
class _State:
    read_at: float
    active: bool
    epoch: int


_cache: dict[str, _State] = {}


def _dynamodb() -> Any:
    import boto3  # already loaded by the signing-key read that comes first

    return boto3.client("dynamodb")


def _read(user_id: str) -> _State | None:
    # The key kumo.identity.models.user_key builds for the user's profile item.
    response = _dynamodb().get_item(
        TableName=get_settings().identity_table,
        Key={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "PROFILE"}},
        ProjectionExpression="active, session_epoch",
        ConsistentRead=True,
    )
    item: dict[str, Any] = response.get("Item") or {}
    if not item:
        return None
    return _State(
        read_at=time.monotonic(),
        active=item.get("active", {}).get("BOOL", True),
        epoch=int(item.get("session_epoch", {}).get("N", "0")),
    )


def _state(user_id: str, token_epoch: int) -> _State | None:
    cached = _cache.get(user_id)
    # A token newer than what this container read means the item changed since: read again.
    if (
        cached is not None
        and time.monotonic() - cached.read_at < CACHE_SECONDS
        and token_epoch <= cached.epoch
    ):
        return cached
    state = _read(user_id)
    if len(_cache) >= _MAX_CACHED:
        _cache.clear()
    if state is None:
        _cache.pop(user_id, None)
    else:
        _cache[user_id] = state
    return state


def require_current(user_id: str, token_epoch: int) -> None:
    state = _state(user_id, token_epoch)
    if state is None or not state.active:
        raise Unauthorized("This account is deactivated or gone.")
    if token_epoch < state.epoch:
        raise Unauthorized("This session ended (role, status or password changed): refresh.")
