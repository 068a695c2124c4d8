"""The one place that reads the wall clock, so tests can move time."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> float:
    return time.time()


def utc_iso(timestamp: float | None = None) -> str:
    moment = datetime.fromtimestamp(now() if timestamp is None else timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> float:
    """The epoch seconds of a time utc_iso wrote."""
    return datetime.fromisoformat(value).timestamp()
