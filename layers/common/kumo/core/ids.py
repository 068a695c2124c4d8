"""Identifiers: time-ordered, URL-safe, 26 characters (ULID layout), so newer sorts later."""

from __future__ import annotations

import hashlib
import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


def new_id() -> str:
    return _encode((int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big"))


def first_id_at(timestamp: float) -> str:
    """The smallest id minted at `timestamp` (epoch seconds): a key range's lower bound."""
    return _encode(int(timestamp * 1000) << 80)


def is_id(value: str) -> bool:
    return len(value) == 26 and all(c in _ALPHABET for c in value)


def shard_of(key: str, shards: int) -> int:
    """A stable shard in [0, shards) for a write-sharded index key: the same on every
    container and deploy (unlike hash(), which Python salts per process)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:2], "big") % shards
