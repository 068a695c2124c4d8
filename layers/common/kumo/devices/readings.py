"""Reading a device's telemetry as a user: access check, time range parsing, response shape."""

from __future__ import annotations

import re
from datetime import datetime

from kumo.core import clock
from kumo.core.errors import invalid
from kumo.devices import service, telemetry
from kumo.devices.schemas import LatestOut, PointOut, Resolution

DEFAULT_WINDOW_MS = 24 * 3600 * 1000
# A raw query reads every packed item in its range: a week of raw data per request is the
# most one page walk should face; rollups cover longer spans.
MAX_RAW_WINDOW_MS = 7 * 24 * 3600 * 1000
_METRIC = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def moment_ms(value: str, field: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise invalid(field, "Use epoch milliseconds or ISO 8601 with a time zone.") from error
    if moment.tzinfo is None:
        raise invalid(field, "An ISO 8601 time needs a time zone, e.g. Z.")
    return int(moment.timestamp() * 1000)


def query(
    *,
    user_id: str,
    device_id: str,
    metric: str,
    start: str | None,
    end: str | None,
    resolution: Resolution,
    limit: int | None,
    cursor: str | None,
) -> tuple[list[PointOut], str | None]:
    service.get_device_for(user_id, device_id, "viewer")
    if not _METRIC.match(metric):
        raise invalid("metric", "Metric names are letters, digits, '_', '.', '-' (max 64).")
    end_ms = moment_ms(end, "to") if end else int(clock.now() * 1000)
    start_ms = moment_ms(start, "from") if start else end_ms - DEFAULT_WINDOW_MS
    if start_ms > end_ms:
        raise invalid("from", "'from' must not be after 'to'.")
    if resolution == "raw" and end_ms - start_ms > MAX_RAW_WINDOW_MS:
        raise invalid("from", "Raw readings cover at most 7 days per query; use 1m, 1h or 1d.")
    points, next_cursor = telemetry.query_readings(
        device_id=device_id,
        metric=metric,
        start_ms=start_ms,
        end_ms=end_ms,
        resolution=resolution,
        limit=limit,
        cursor=cursor,
    )
    return [PointOut.model_validate(point, from_attributes=True) for point in points], next_cursor


def latest(*, user_id: str, device_id: str) -> LatestOut:
    service.get_device_for(user_id, device_id, "viewer")
    values = telemetry.latest(device_id)
    return LatestOut(
        device_id=device_id,
        metrics={name: {"ts": v.ts, "value": v.value} for name, v in values.items()},
    )
