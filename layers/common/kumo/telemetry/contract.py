"""The device payload contract: what a device may send, checked before anything is stored.
Both ingestion paths (the SQS batch the IoT rule feeds, and HTTP POST) parse with this module.

Payload: the device contract
----------------------------
One reading::

    {"ts": 1714564800000, "metrics": {"temperature": 21.5, "humidity": 40}}

or a batch of them::

    {"readings": [{"ts": "2024-05-01T12:00:00Z", "metrics": {...}}, ...]}

- `ts` is epoch milliseconds (an integer) or an ISO-8601 string with an offset or `Z`; left
  out (or null), it is the time the message was received. It must be no more than 5 minutes
  ahead of that time and no more than 7 days behind it.
- `metrics` holds 1 to 32 metrics. A name is a letter followed by up to 63 letters, digits,
  `_`, `.` or `-`; a value is a finite JSON number (not a boolean) with |value| <= 1e15,
  and 0 or at least 1e-130 in magnitude (the smallest number DynamoDB stores).
- A batch holds at most 500 readings, and the raw message at most 128 KiB
  (`MAX_PAYLOAD_BYTES`, checked by `decode_payload` on the bytes received).
- `org_id`, `device_id`, `received_at` and `client_id` at the top level (the IoT rule adds
  them) are allowed and ignored: the caller passes the device it authenticated. Any other
  unknown top-level key refuses the payload; an unknown key inside a batch reading refuses
  that reading.
- A bad reading is refused with its index and a reason; the good readings beside it are kept.

The caller passes `now_ms`: the IoT rule's `received_at` when there is one (a message that
waited in the queue is judged by when it arrived), else the current time.

"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from kumo.core import numbers
from kumo.core.errors import invalid
from kumo.telemetry.errors import PayloadTooLarge

MAX_PAYLOAD_BYTES: Final = 128 * 1024
MAX_READINGS: Final = 500
MAX_METRICS: Final = 32
MAX_ABS_VALUE: Final = 1e15
MAX_FUTURE_MS: Final = 5 * 60_000
MAX_AGE_MS: Final = 7 * 86_400_000
# fullmatch, not `$`: `$` would let a trailing newline through.
METRIC_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_ENVELOPE_KEYS: Final = frozenset({"org_id", "device_id", "received_at", "client_id"})
_READING_KEYS: Final = frozenset({"ts", "metrics"})
_MAX_TS_TEXT: Final = 40
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Reading:
    ts_ms: int
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class Batch:
    """The valid readings of one message: the unit that is stored once."""

    org_id: str
    device_id: str
    readings: tuple[Reading, ...]


def decode_payload(raw: str | bytes) -> object:
    """The JSON a device sent, refused before parsing when it is over MAX_PAYLOAD_BYTES."""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"A telemetry message is at most {MAX_PAYLOAD_BYTES // 1024} KiB.")
    try:
        decoded: object = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise invalid("payload", "The payload is not valid JSON.") from error
    return decoded


def parse_payload(payload: object, *, now_ms: int) -> tuple[list[Reading], list[Rejection]]:
    """The readings of one message and the refused ones (index in the message and reason).

    A payload that is not the contract's shape at all raises ValidationFailed."""
    if not isinstance(payload, dict):
        raise invalid("payload", "The payload must be a JSON object.")
    batch = "readings" in payload
    unknown = sorted(
        str(key)
        for key in payload
        if key not in _ENVELOPE_KEYS and key not in ({"readings"} if batch else _READING_KEYS)
    )
    if unknown:
        raise invalid(unknown[0][:64], f"Unknown field {unknown[0][:64]!r}.")
    if batch:
        entries = payload["readings"]
        if not isinstance(entries, list):
            raise invalid("readings", "readings must be a list of readings.")
        if len(entries) > MAX_READINGS:
            raise invalid("readings", f"A batch holds at most {MAX_READINGS} readings.")
    else:
        entries = [{key: payload[key] for key in _READING_KEYS if key in payload}]

    readings: list[Reading] = []
    rejections: list[Rejection] = []
    for index, entry in enumerate(entries):
        outcome = _parse_reading(entry, now_ms=now_ms)
        if isinstance(outcome, Reading):
            readings.append(outcome)
        else:
            rejections.append(Rejection(index=index, reason=outcome))
    return readings, rejections


def _parse_reading(entry: object, *, now_ms: int) -> Reading | str:
    if not isinstance(entry, dict):
        return "a reading must be a JSON object"
    unknown = sorted(str(key) for key in entry if key not in _READING_KEYS)
    if unknown:
        return f"unknown field {unknown[0][:64]!r}"
    ts = _parse_ts(entry.get("ts"), now_ms=now_ms)
    if isinstance(ts, str):
        return ts
    metrics = _parse_metrics(entry.get("metrics"))
    if isinstance(metrics, str):
        return metrics
    return Reading(ts_ms=ts, metrics=metrics)


def _parse_ts(value: object, *, now_ms: int) -> int | str:
    if value is None:
        return now_ms
    if isinstance(value, str):
        if len(value) > _MAX_TS_TEXT:
            return "ts is not an ISO-8601 time"
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return "ts is not an ISO-8601 time"
        if moment.tzinfo is None:
            return "ts needs an offset or Z"
        ts_ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    elif isinstance(value, int) and not isinstance(value, bool):
        ts_ms = value
    else:
        return "ts must be epoch milliseconds (an integer) or an ISO-8601 string"
    if ts_ms > now_ms + MAX_FUTURE_MS:
        return f"ts is more than {MAX_FUTURE_MS // 60_000} minutes in the future"
    if ts_ms < now_ms - MAX_AGE_MS:
        return f"ts is more than {MAX_AGE_MS // 86_400_000} days old"
    return ts_ms


def _parse_metrics(value: object) -> dict[str, float] | str:
    if value is None:
        return "metrics is missing"
    if not isinstance(value, dict):
        return "metrics must be an object of name: number"
    if not 1 <= len(value) <= MAX_METRICS:
        return f"a reading holds 1 to {MAX_METRICS} metrics"
    metrics: dict[str, float] = {}
    for name, number in value.items():
        if not isinstance(name, str) or not METRIC_NAME.fullmatch(name):
            return f"metric name {str(name)[:64]!r} is not allowed"
        if isinstance(number, bool) or not isinstance(number, int | float):
            return f"metric {name!r} must be a number"
        # Only floats can be NaN or infinite; math.isfinite would overflow on a huge int.
        if isinstance(number, float) and not math.isfinite(number):
            return f"metric {name!r} must be finite"
        if abs(number) > MAX_ABS_VALUE:
            return f"metric {name!r} is beyond ±{MAX_ABS_VALUE:.0e}"
        if not numbers.storable(number):
            return f"metric {name!r} must be 0 or at least {numbers.MIN_MAGNITUDE:.0e} in magnitude"
        # Exact: |value| <= 1e15 < 2**53, so even integers survive the float.
        metrics[name] = float(number)
    return metrics
