"""Key sets kept in Secrets Manager: the access-token key and the page-cursor key (ADR 0021).

A secret holds one JSON key set:

    {"current": "<kid>", "keys": {"<kid>": "<key>", ...}, "retired": {"<kid>": <epoch s>}}

New signatures use the current key; a signature is checked with the key its kid names, so a
rotated-out key keeps verifying until it is dropped (`rotated`, called by `infra.keys`). A
secret the template has just generated holds `{"current": "<kid>", "<kid>": "<key>"}`:
GenerateSecretString can add only a top-level entry, so that shape is read as a one-key set.

Each container reads a secret once and keeps it `signing_key_cache_seconds` (Powertools
Parameters' cache), so a rotation reaches every container within that time. A kid the cached
set does not know may be newer than the cache: the set is then read again, at most once per
`REFRESH_INTERVAL_SECONDS`, so forged kids cannot turn into a Secrets Manager call each.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from kumo.core.config import ConfigurationError, get_settings

MIN_KEY_LENGTH = 32
REFRESH_INTERVAL_SECONDS = 30.0

# secret id -> monotonic time of its last forced read, in this container.
_last_refresh: dict[str, float] = {}


@dataclass(frozen=True)
class KeySet:
    current: str
    keys: Mapping[str, str]
    # kid -> when it stopped being current (epoch seconds); the current key has none.
    retired: Mapping[str, float] = field(default_factory=dict)

    @property
    def current_key(self) -> str:
        return self.keys[self.current]

    def key(self, kid: str) -> str | None:
        return self.keys.get(kid)

    def to_json(self) -> str:
        return json.dumps(
            {"current": self.current, "keys": dict(self.keys), "retired": dict(self.retired)},
            sort_keys=True,
        )

    def rotated(self, *, now: float, keep_seconds: float) -> KeySet:
        """A new current key; the old one retired now; keys retired more than `keep_seconds`
        ago dropped (no token or cursor they signed is still valid)."""
        kid = new_kid(now)
        retired = {**self.retired, self.current: now}
        # A key of the generated shape has no retirement time: it is kept, to be safe.
        kept = {
            old: value
            for old, value in self.keys.items()
            if now - retired.get(old, now) <= keep_seconds
        }
        retired = {old: at for old, at in retired.items() if old in kept}
        return KeySet(current=kid, keys={**kept, kid: secrets.token_hex(32)}, retired=retired)


def new_kid(now: float) -> str:
    # Sortable by creation time, and unique when two rotations share a second.
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(2)}"


def parse_key_set(raw: str | Mapping[str, Any]) -> KeySet:
    data: Any = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(data, Mapping) or not isinstance(data.get("current"), str):
        raise ConfigurationError("a signing key set needs a 'current' kid")
    current: str = data["current"]
    keys = dict(data.get("keys") or {})
    if current not in keys and isinstance(data.get(current), str):
        keys[current] = data[current]  # the shape GenerateSecretString writes
    if current not in keys:
        raise ConfigurationError("the current kid of a signing key set has no key")
    if any(not isinstance(k, str) or len(k) < MIN_KEY_LENGTH for k in keys.values()):
        raise ConfigurationError(f"signing keys must be at least {MIN_KEY_LENGTH} characters")
    retired = {str(kid): float(at) for kid, at in dict(data.get("retired") or {}).items()}
    return KeySet(current=current, keys=keys, retired=retired)


def load(secret_id: str, *, unknown_kid: str | None = None) -> KeySet:
    """The key set in the secret, from this container's cache when fresh enough. With
    `unknown_kid`, the caller met a kid the cached set lacks: read the secret again, unless
    that was done less than REFRESH_INTERVAL_SECONDS ago."""
    # Imported here: Powertools Parameters pulls in boto3, which a handler's import need not pay.
    from aws_lambda_powertools.utilities.parameters import get_secret

    refresh = False
    if unknown_kid is not None:
        now = time.monotonic()
        last = _last_refresh.get(secret_id)
        if last is None or now - last >= REFRESH_INTERVAL_SECONDS:
            _last_refresh[secret_id] = now
            refresh = True
    raw = get_secret(
        secret_id,
        max_age=get_settings().signing_key_cache_seconds,
        force_fetch=refresh,
    )
    return _parsed(raw if isinstance(raw, str) else raw.decode())


@lru_cache(maxsize=8)
def _parsed(raw: str) -> KeySet:
    # Every token check loads the set: parse each secret value once.
    return parse_key_set(raw)


def forget() -> None:
    """Drop what this process has cached (tests; a rotation seen at once)."""
    import sys

    _last_refresh.clear()
    _parsed.cache_clear()
    if "aws_lambda_powertools.utilities.parameters" in sys.modules:
        from aws_lambda_powertools.utilities.parameters import clear_caches

        clear_caches()
