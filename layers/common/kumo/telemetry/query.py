"""Reading telemetry: one metric of a device over a time range, raw or rolled up, and its
latest values; behind GET /api/v1/devices/{device_id}/readings and /latest (with the caller's
access check and time range parsing) and the CSV export builder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, cast

from kumo.core import clock
from kumo.core.errors import BadRequest, invalid
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor
from kumo.devices import service as devices
from kumo.telemetry import models
from kumo.telemetry.contract import METRIC_NAME
from kumo.telemetry.models import (
    BUCKET_MS,
    LATEST_SK,
    LATEST_TIME_PREFIX,
    LATEST_VALUE_PREFIX,
    RAW_SPAN_MS,
    RawReadingsModel,
    Resolution,
    bucket_sort_key,
    bucket_start,
    iso_ms,
    latest_key,
    number,
    raw_key,
    raw_sort_bound,
    rollup_attribute,
    rollup_key,
    telemetry_table,
)
from kumo.telemetry.schemas import MOMENT_PATTERN, LatestOut, PointOut
from kumo.telemetry.schemas import Resolution as QueryResolution

DEFAULT_WINDOW_MS: Final = 24 * 3600 * 1000
# A raw query reads every packed item in its range: a week of raw data per request is the
# most one page walk should face; rollups cover longer spans.
MAX_RAW_WINDOW_MS: Final = 7 * 24 * 3600 * 1000
_MOMENT: Final = re.compile(MOMENT_PATTERN)
# A raw query page examines at most this many items, so a rare metric over a long range
# answers with a cursor instead of reading the whole range in one request.
_RAW_ITEMS_PER_PAGE: Final = 100
# Likewise for rollups: buckets where the queried metric is missing are read and skipped.
_ROLLUP_ITEMS_PER_PAGE: Final = 500


@dataclass(frozen=True, slots=True)
class RawPoint:
    ts: str
    value: float


@dataclass(frozen=True, slots=True)
class RollupPoint:
    ts: str  # the bucket's start
    count: int
    sum: float
    min: float | None
    max: float | None
    avg: float


type Point = RawPoint | RollupPoint


@dataclass(frozen=True, slots=True)
class LatestValue:
    ts: str
    value: float


# --- as a user ------------------------------------------------------------------------------


def moment_ms(value: str, field: str) -> int:
    if not _MOMENT.fullmatch(value):
        raise invalid(field, "Use epoch milliseconds or ISO 8601 with a time zone.")
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value.upper())
    except ValueError as error:  # the shape is right, the calendar is not
        raise invalid(field, "Use epoch milliseconds or ISO 8601 with a time zone.") from error
    return int(moment.timestamp() * 1000)


def device_readings(
    *,
    user_id: str,
    device_id: str,
    metric: str,
    start: str | None,
    end: str | None,
    resolution: QueryResolution,
    limit: int | None,
    cursor: str | None,
) -> tuple[list[PointOut], str | None]:
    devices.get_device_for(user_id, device_id, "viewer")
    if not METRIC_NAME.fullmatch(metric):
        raise invalid("metric", "Metric names are letters, digits, '_', '.', '-' (max 64).")
    end_ms = moment_ms(end, "to") if end else int(clock.now() * 1000)
    start_ms = moment_ms(start, "from") if start else end_ms - DEFAULT_WINDOW_MS
    if start_ms > end_ms:
        raise invalid("from", "'from' must not be after 'to'.")
    if resolution == "raw" and end_ms - start_ms > MAX_RAW_WINDOW_MS:
        raise invalid("from", "Raw readings cover at most 7 days per query; use 1m, 1h or 1d.")
    points, next_cursor = query_readings(
        device_id=device_id,
        metric=metric,
        start_ms=start_ms,
        end_ms=end_ms,
        resolution=resolution,
        limit=limit,
        cursor=cursor,
    )
    return [PointOut.model_validate(point, from_attributes=True) for point in points], next_cursor


def device_latest(*, user_id: str, device_id: str) -> LatestOut:
    devices.get_device_for(user_id, device_id, "viewer")
    values = latest(device_id)
    return LatestOut(
        device_id=device_id,
        metrics={name: {"ts": v.ts, "value": v.value} for name, v in values.items()},
    )


# --- from storage ---------------------------------------------------------------------------


def query_readings(
    *,
    device_id: str,
    metric: str,
    start_ms: int,
    end_ms: int,
    resolution: Literal["raw", "1m", "1h", "1d"],
    limit: int | None,
    cursor: str | None,
) -> tuple[list[Point], str | None]:
    """One metric of one device from start to end (both included), oldest first.

    raw: one point per reading. Items are read in sort-key order: a minute's fragments in the
    order they were written (ADR 26), so a late reading comes after the later ones stored
    before it in that minute; items of the layout before (one per message) by their first
    reading. Rollups: one point per bucket whose start lies in
    [start rounded down to the bucket, end]. `limit` counts points."""
    if not METRIC_NAME.fullmatch(metric):
        raise invalid("metric", "No such metric name.")
    if start_ms > end_ms:
        raise invalid("start", "start must not be after end.")
    page_size = clamp_limit(limit)
    if resolution == "raw":
        return _query_raw(device_id, metric, start_ms, end_ms, page_size, cursor)
    if resolution not in BUCKET_MS:
        raise invalid("resolution", "resolution is one of raw, 1m, 1h, 1d.")
    return _query_rollups(device_id, metric, start_ms, end_ms, resolution, page_size, cursor)


def _query_rollups(
    device_id: str,
    metric: str,
    start_ms: int,
    end_ms: int,
    resolution: Resolution,
    page_size: int,
    cursor: str | None,
) -> tuple[list[Point], str | None]:
    """The device's bucket items of that resolution, projected to the metric's attributes; a
    bucket where the metric has no count is skipped. A page examines at most
    _ROLLUP_ITEMS_PER_PAGE items, so a rare metric over a long range answers with a cursor."""
    partition = rollup_key(device_id, resolution)
    start_key = decode_cursor(cursor, partition=("pk", partition))
    names = {
        "#pk": "pk",
        "#sk": "sk",
        "#n": rollup_attribute("n", metric),
        "#s": rollup_attribute("s", metric),
        "#mn": rollup_attribute("mn", metric),
        "#mx": rollup_attribute("mx", metric),
    }
    values = {
        ":pk": {"S": partition},
        ":lo": {"S": bucket_sort_key(bucket_start(start_ms, resolution))},
        ":hi": {"S": bucket_sort_key(end_ms)},
    }
    points: list[Point] = []
    examined = 0
    while True:
        request: dict[str, Any] = {
            "TableName": telemetry_table(),
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
            "ProjectionExpression": "#pk, #sk, #n, #s, #mn, #mx",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "Limit": min(page_size - len(points), _ROLLUP_ITEMS_PER_PAGE - examined),
        }
        if start_key is not None:
            request["ExclusiveStartKey"] = start_key
        response = models.client().query(**request)
        items = cast(list[dict[str, Any]], response.get("Items", []))
        examined += len(items)
        for item in items:
            count = number(item, names["#n"])
            if not count:
                continue
            total = number(item, names["#s"]) or 0.0
            points.append(
                RollupPoint(
                    ts=item["sk"]["S"],
                    count=int(count),
                    sum=total,
                    min=number(item, names["#mn"]),
                    max=number(item, names["#mx"]),
                    avg=total / int(count),
                )
            )
        start_key = cast(dict[str, Any] | None, response.get("LastEvaluatedKey"))
        if start_key is None or len(points) >= page_size or examined >= _ROLLUP_ITEMS_PER_PAGE:
            return points, encode_cursor(start_key)


def _raw_cursor(partition: str, sk: str, at: int) -> str | None:
    return encode_cursor({"pk": {"S": partition}, "sk": {"S": sk}, "at": {"N": str(at)}})


def _raw_position(cursor: str | None, partition: str) -> tuple[str, int] | None:
    """(sort key, readings of that item already returned) from a raw cursor."""
    key = decode_cursor(cursor, partition=("pk", partition))
    if key is None:
        return None
    try:
        return str(key["sk"]["S"]), int(key["at"]["N"])
    except (KeyError, TypeError, ValueError) as error:
        raise BadRequest("The cursor belongs to another list.", field="cursor") from error


def _query_raw(
    device_id: str,
    metric: str,
    start_ms: int,
    end_ms: int,
    page_size: int,
    cursor: str | None,
) -> tuple[list[Point], str | None]:
    """Items are keyed by their first reading and span at most RAW_SPAN_MS, so starting the
    Query RAW_SPAN_MS early finds every item that reaches into the range; readings outside it
    are filtered here. A cursor is a position inside an item: (its sort key, readings done)."""
    partition = raw_key(device_id)
    lower = raw_sort_bound(start_ms - RAW_SPAN_MS, upper=False)
    upper = raw_sort_bound(end_ms, upper=True)
    position = _raw_position(cursor, partition)
    if position is not None:
        lower = max(lower, position[0])
    points: list[Point] = []
    items = RawReadingsModel.query(
        partition, RawReadingsModel.sk.between(lower, upper), page_size=25
    )
    for examined, item in enumerate(items, start=1):
        readings: list[list[Any]] = json.loads(item.r)
        first = position[1] if position is not None and item.sk == position[0] else 0
        for index in range(first, len(readings)):
            ts, values = readings[index]
            if start_ms <= ts <= end_ms and metric in values:
                if len(points) == page_size:
                    return points, _raw_cursor(partition, item.sk, index)
                points.append(RawPoint(ts=iso_ms(ts), value=float(values[metric])))
        if examined == _RAW_ITEMS_PER_PAGE:
            return points, _raw_cursor(partition, item.sk, len(readings))
    return points, None


def raw_readings(
    device_id: str, start_ms: int, end_ms: int
) -> Iterator[tuple[int, dict[str, float]]]:
    """Every raw reading of the device in [start, end] with all its metrics, for a reader of
    many metrics (an export) that would otherwise read each item once per metric. Items come
    in order of their first reading, so readings come within RAW_SPAN_MS of time order."""
    lower = raw_sort_bound(start_ms - RAW_SPAN_MS, upper=False)
    upper = raw_sort_bound(end_ms, upper=True)
    for item in RawReadingsModel.query(
        raw_key(device_id), RawReadingsModel.sk.between(lower, upper)
    ):
        for ts, values in json.loads(item.r):
            if start_ms <= ts <= end_ms:
                yield ts, values


def latest(device_id: str) -> dict[str, LatestValue]:
    """The newest value of every metric the device has sent, by metric name."""
    response = models.client().get_item(
        TableName=telemetry_table(),
        Key={"pk": {"S": latest_key(device_id)}, "sk": {"S": LATEST_SK}},
    )
    item = cast(dict[str, Any], response.get("Item") or {})
    values: dict[str, LatestValue] = {}
    for name in sorted(item):
        if not name.startswith(LATEST_VALUE_PREFIX):
            continue
        metric = name.removeprefix(LATEST_VALUE_PREFIX)
        ts = item.get(LATEST_TIME_PREFIX + metric)
        if ts is None:
            continue
        values[metric] = LatestValue(ts=iso_ms(int(ts["N"])), value=float(item[name]["N"]))
    return values
