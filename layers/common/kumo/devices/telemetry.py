"""Telemetry storage behind ingestion (the SQS batch worker the IoT rule feeds, and HTTP POST)
and the telemetry queries: the device payload contract, packed raw items, rollups, latest values.

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
  `_`, `.` or `-`; a value is a finite JSON number (not a boolean) with |value| <= 1e15.
- A batch holds at most 500 readings, and the raw message at most 128 KiB
  (`MAX_PAYLOAD_BYTES`, checked by `decode_payload` on the bytes received).
- `org_id`, `device_id`, `received_at` and `client_id` at the top level (the IoT rule adds
  them) are allowed and ignored: the caller passes the device it authenticated. Any other
  unknown top-level key refuses the payload; an unknown key inside a batch reading refuses
  that reading.
- A bad reading is refused with its index and a reason; the good readings beside it are kept.

The caller passes `now_ms`: the IoT rule's `received_at` when there is one (a message that
waited in the queue is judged by when it arrived), else the current time.

Storage (table TELEMETRY_TABLE; keys in kumo.devices.telemetry_models)
-----------------------------------------------------------------------
- Raw readings are packed: one item per message, keyed by its first reading's time and a
  digest of its content, so a redelivered or republished message lands on the same key and
  its conditional put makes it a no-op. A message whose rollups would not fit one
  transaction, or that spans more than `RAW_SPAN_MS`, is cut into parts, each its own item.
- Rollups: one item per device, resolution (minute, hour, day) and bucket, holding the count,
  sum, min and max of every metric sent in that bucket as flat attributes (`n_<metric>`,
  `s_<metric>`, `mn_<metric>`, `mx_<metric>`), so a message updates three rollup items per
  bucket combination whatever its metric count. Count and sum are exactly-once: they change
  in the same transaction as the raw puts they count (ADD creates a missing attribute; min
  and max are set there too when new, by if_not_exists). Lowering a min or raising a max is
  idempotent and is applied after it, only where the chunk's value beats the stored one, one
  conditional update per item; duplicates take part in that step too, so a redelivery
  repairs an invocation that died between the transaction and it.
- Latest values: one item per device, never moved back by an older batch.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from kumo.core import aws
from kumo.core.errors import BadRequest, KumoError, invalid
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor
from kumo.devices.telemetry_models import (
    BUCKET_MS,
    LATEST_NEWEST,
    LATEST_SK,
    LATEST_TIME_PREFIX,
    LATEST_VALUE_PREFIX,
    RESOLUTIONS,
    ROLLUP_RETENTION_SECONDS,
    RawReadingsModel,
    Resolution,
    RollupKind,
    bucket_sort_key,
    bucket_start,
    iso_ms,
    latest_key,
    raw_key,
    raw_sort_bound,
    raw_sort_key,
    rollup_attribute,
    rollup_key,
    table_name,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = Logger(child=True)

# --- the device contract --------------------------------------------------------------------

MAX_PAYLOAD_BYTES: Final = 128 * 1024
MAX_READINGS: Final = 500
MAX_METRICS: Final = 32
MAX_ABS_VALUE: Final = 1e15
MAX_FUTURE_MS: Final = 5 * 60_000
MAX_AGE_MS: Final = 7 * 86_400_000
# fullmatch, not `$`: `$` would let a trailing newline through.
_METRIC_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_ENVELOPE_KEYS: Final = frozenset({"org_id", "device_id", "received_at", "client_id"})
_READING_KEYS: Final = frozenset({"ts", "metrics"})
_MAX_TS_TEXT: Final = 40
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# --- storage limits -------------------------------------------------------------------------

# A raw item spans at most this from its first reading (its sort key), so a raw query looks
# back exactly this far for items that start before the range and reach into it.
RAW_SPAN_MS: Final = 10 * 60_000
MAX_TRANSACT_ACTIONS: Final = 100
# TransactWriteItems takes at most 4 MB in all: the puts and a bound on the rollup updates'
# request size (`_rollup_request_bytes`) stay under this, leaving a margin.
_MAX_TRANSACT_BYTES: Final = 3_500_000
# Parts are cut at this packed size, well under DynamoDB's 400 KB item limit (a 128 KiB
# payload of values like 1e15 packs to about twice its size).
_MAX_PART_BYTES: Final = 300_000
# Concurrent writers of one rollup item (two invocations, one device) cancel each other's
# transaction with TransactionConflict: worth a few quick retries before SQS redelivers.
_CONFLICT_RETRIES: Final = 3
_RETRYABLE: Final = frozenset({"TransactionConflict", "ThrottlingError"})
# The cancellation reason of a raw put whose item exists: that message is already stored.
_CHECK_FAILED: Final = "ConditionalCheckFailed"
_BATCH_GET_KEYS: Final = 100
# A raw query page examines at most this many items, so a rare metric over a long range
# answers with a cursor instead of reading the whole range in one request.
_RAW_ITEMS_PER_PAGE: Final = 100
# Likewise for rollups: buckets where the queried metric is missing are read and skipped.
_ROLLUP_ITEMS_PER_PAGE: Final = 500
# Mins and maxes of one rollup item set by one conditional update after the transaction.
_EXTREMES_PER_UPDATE: Final = 16


class PayloadTooLarge(KumoError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


# --- types ----------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class StoreReport:
    stored: int  # readings written now
    duplicates: int  # readings skipped: their message (or part of it) was already stored
    # As DynamoDB reports them (ReturnConsumedCapacity=TOTAL). A response that reports nothing
    # (moto's TransactWriteItems, a cancelled transaction, a failed condition) counts as its
    # estimate. Moto reports a flat 0.5 per UpdateItem, so under moto prefer the estimate.
    write_units: float
    # Computed from item sizes by DynamoDB's rules (1 unit per started KB per item, twice in a
    # transaction, a failed condition still charged), whatever the endpoint reports.
    estimated_write_units: float
    # The eventually consistent reads that spare the min/max and latest writes that would not
    # change anything (as reported, or 1 unit per started 4 KB per item).
    read_units: float


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


# --- parsing --------------------------------------------------------------------------------


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
        if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name):
            return f"metric name {str(name)[:64]!r} is not allowed"
        if isinstance(number, bool) or not isinstance(number, int | float):
            return f"metric {name!r} must be a number"
        # Only floats can be NaN or infinite; math.isfinite would overflow on a huge int.
        if isinstance(number, float) and not math.isfinite(number):
            return f"metric {name!r} must be finite"
        if abs(number) > MAX_ABS_VALUE:
            return f"metric {name!r} is beyond ±{MAX_ABS_VALUE:.0e}"
        # Exact: |value| <= 1e15 < 2**53, so even integers survive the float.
        metrics[name] = float(number)
    return metrics


# --- storing --------------------------------------------------------------------------------

type _RollupKey = tuple[str, Resolution, int]  # device, resolution, bucket start


@dataclass(frozen=True, slots=True)
class _Part:
    """One raw item: a whole message, or a piece of one too large for one transaction."""

    device_id: str
    pk: str
    sk: str
    item: RawReadingsModel
    readings: tuple[Reading, ...]
    rollup_keys: frozenset[_RollupKey]
    size: int
    # An upper bound on the bytes of this part's rollup updates in a transaction request.
    rollup_bytes: int


@dataclass(slots=True)
class _Aggregate:
    n: int = 0
    s: Decimal = Decimal(0)
    mn: float = math.inf
    mx: float = -math.inf

    def add(self, value: float) -> None:
        self.n += 1
        # Decimal of the shortest repr: 0.1 + 0.2 sums to 0.3, as DynamoDB's ADD would.
        self.s += Decimal(repr(value))
        self.mn = min(self.mn, value)
        self.mx = max(self.mx, value)


@dataclass(slots=True)
class _Meter:
    write_units: float = 0.0
    estimated_write_units: float = 0.0
    read_units: float = 0.0

    def wrote(self, response: Mapping[str, Any] | None, estimate: float) -> None:
        reported = _reported_units(response)
        self.write_units += estimate if reported is None else reported
        self.estimated_write_units += estimate

    def corrected(self, extra: float, *, reported: bool) -> None:
        """A write already counted turned out larger than estimated (a rollup item holding
        metrics the chunk did not send): the estimate grows, and so do the units unless the
        response reported them."""
        self.estimated_write_units += extra
        if not reported:
            self.write_units += extra

    def read(self, response: Mapping[str, Any], estimate: float) -> None:
        reported = _reported_units(response)
        self.read_units += estimate if reported is None else reported


def store_batches(
    batches: Sequence[Batch], *, retention_days: int | Mapping[str, int] = 7
) -> StoreReport:
    """Store each message once, with its rollups and the devices' latest values.

    Raw items expire `retention_days` after their last reading: one number for every batch,
    or days by org id (the org's setting; an org missing from the mapping gets 7). A message
    stored again keeps the expiry it was first stored with.

    Safe to call again with the same messages (an SQS redelivery): they count as duplicates
    and change no count or sum. Raises on a DynamoDB failure, so the caller's message is
    retried; what was already stored then counts as duplicates."""
    parts: dict[tuple[str, str], _Part] = {}
    duplicates = 0
    for batch in batches:
        if not batch.device_id or not batch.org_id:
            raise ValueError("a batch needs its org and device ids")
        days = (
            retention_days
            if isinstance(retention_days, int)
            else retention_days.get(batch.org_id, 7)
        )
        for part in _parts_of(batch, retention_days=days):
            if (part.pk, part.sk) in parts:
                # The same message twice in one call: one transaction cannot write one item
                # twice, and the second copy is a duplicate anyway.
                duplicates += len(part.readings)
                continue
            parts[(part.pk, part.sk)] = part

    meter = _Meter()
    stored = 0
    # One device's parts side by side, so a chunk aggregates their rollups into one update.
    ordered = sorted(parts.values(), key=lambda part: (part.device_id, part.sk))
    for chunk in _chunks(ordered):
        commit = _write_chunk(chunk, meter)
        written = _readings_in(commit.parts)
        stored += written
        duplicates += _readings_in(chunk) - written
        _apply_extremes_and_latest(chunk, commit, meter)
    if duplicates:
        logger.info("telemetry duplicates skipped", readings=duplicates)
    return StoreReport(
        stored=stored,
        duplicates=duplicates,
        write_units=meter.write_units,
        estimated_write_units=meter.estimated_write_units,
        read_units=meter.read_units,
    )


def _readings_in(parts: Iterable[_Part]) -> int:
    return sum(len(part.readings) for part in parts)


def _canonical_order(reading: Reading) -> tuple[int, str]:
    return reading.ts_ms, json.dumps(reading.metrics, sort_keys=True)


def _compact(value: float) -> float | int:
    # 40 rather than 40.0 in the packed JSON: two bytes a value, and the same float back.
    return int(value) if value.is_integer() else value


def _packed(readings: Sequence[Reading]) -> list[list[Any]]:
    return [
        [reading.ts_ms, {name: _compact(reading.metrics[name]) for name in sorted(reading.metrics)}]
        for reading in readings
    ]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _rollup_keys(device_id: str, reading: Reading) -> set[_RollupKey]:
    return {
        (device_id, resolution, bucket_start(reading.ts_ms, resolution))
        for resolution in RESOLUTIONS
    }


def _rollup_request_bytes(keys: int, metrics: Iterable[str]) -> int:
    """A bound on the request bytes of `keys` rollup updates covering these metrics: key and
    TTL, and per metric four attribute names, values and their share of the expression."""
    return keys * (512 + sum(4 * len(metric) + 192 for metric in metrics))


def _parts_of(batch: Batch, *, retention_days: int) -> list[_Part]:
    """Readings in canonical order, cut where a part would outgrow a transaction (its put and
    its rollup updates: three per distinct minute, hour and day, so at most 15 within
    RAW_SPAN_MS, and the action limit is a guard), the item size limit, or RAW_SPAN_MS. The cut
    depends on the content only, so a redelivered message is cut the same way and every part
    finds its twin."""
    readings = sorted(batch.readings, key=_canonical_order)
    parts: list[_Part] = []
    current: list[Reading] = []
    keys: set[_RollupKey] = set()
    size = 0
    for reading in readings:
        reading_keys = _rollup_keys(batch.device_id, reading)
        reading_size = len(_dumps(_packed([reading])).encode())
        if current and (
            reading.ts_ms - current[0].ts_ms > RAW_SPAN_MS
            or 1 + len(keys | reading_keys) > MAX_TRANSACT_ACTIONS
            or size + reading_size > _MAX_PART_BYTES
        ):
            parts.append(_part(batch, current, keys, retention_days))
            current, keys, size = [], set(), 0
        current.append(reading)
        keys |= reading_keys
        size += reading_size
    if current:
        parts.append(_part(batch, current, keys, retention_days))
    return parts


def _part(
    batch: Batch, readings: list[Reading], keys: set[_RollupKey], retention_days: int
) -> _Part:
    packed = _packed(readings)
    digest = hashlib.sha256(_dumps([batch.device_id, packed]).encode()).hexdigest()[:16]
    pk, sk = raw_key(batch.device_id), raw_sort_key(readings[0].ts_ms, digest)
    last_ms = readings[-1].ts_ms
    item = RawReadingsModel(
        pk,
        sk,
        r=_dumps(packed),
        n=len(readings),
        last_ms=last_ms,
        org_id=batch.org_id,
        expires_at=last_ms // 1000 + retention_days * 86_400,
    )
    metrics = {metric for reading in readings for metric in reading.metrics}
    return _Part(
        device_id=batch.device_id,
        pk=pk,
        sk=sk,
        item=item,
        readings=tuple(readings),
        rollup_keys=frozenset(keys),
        size=_item_bytes(item.serialize()),
        rollup_bytes=_rollup_request_bytes(len(keys), metrics),
    )


def _chunks(parts: Sequence[_Part]) -> Iterable[list[_Part]]:
    """Parts grouped so each group's puts plus its distinct rollup updates (one per device,
    resolution and bucket) fit one transaction."""
    chunk: list[_Part] = []
    keys: set[_RollupKey] = set()
    size = 0
    for part in parts:
        part_bytes = part.size + part.rollup_bytes
        if chunk and (
            len(chunk) + 1 + len(keys | part.rollup_keys) > MAX_TRANSACT_ACTIONS
            or size + part_bytes > _MAX_TRANSACT_BYTES
        ):
            yield chunk
            chunk, keys, size = [], set(), 0
        chunk.append(part)
        keys |= part.rollup_keys
        size += part_bytes
    if chunk:
        yield chunk


def _aggregate(parts: Iterable[_Part]) -> dict[_RollupKey, dict[str, _Aggregate]]:
    """Per rollup item (device, resolution, bucket), the aggregate of each metric."""
    aggregates: dict[_RollupKey, dict[str, _Aggregate]] = {}
    for part in parts:
        for reading in part.readings:
            for resolution in RESOLUTIONS:
                key = (part.device_id, resolution, bucket_start(reading.ts_ms, resolution))
                metrics = aggregates.setdefault(key, {})
                for metric, value in reading.metrics.items():
                    metrics.setdefault(metric, _Aggregate()).add(value)
    return aggregates


def _rollup_item_key(key: _RollupKey) -> dict[str, Any]:
    device_id, resolution, bucket_ms = key
    return {
        "pk": {"S": rollup_key(device_id, resolution)},
        "sk": {"S": bucket_sort_key(bucket_ms)},
    }


def _rollup_update(
    key: _RollupKey, metrics: Mapping[str, _Aggregate]
) -> tuple[dict[str, Any], int]:
    """The transactional update of one rollup item: ADD count and sum of every metric (ADD
    creates a missing attribute, and the item), min and max set only where missing; and the
    size of the item as this update alone would make it."""
    _, resolution, bucket_ms = key
    expires_at = {"N": str(bucket_ms // 1000 + ROLLUP_RETENTION_SECONDS[resolution])}
    names = {"#e": "expires_at"}
    values: dict[str, Any] = {":e": expires_at}
    sets = ["#e = :e"]
    adds: list[str] = []
    item: dict[str, Any] = {**_rollup_item_key(key), "expires_at": expires_at}
    for index, (metric, aggregate) in enumerate(sorted(metrics.items())):
        for kind, value in (
            ("n", str(aggregate.n)),
            ("s", _number_text(float(aggregate.s))),
            ("mn", _number_text(aggregate.mn)),
            ("mx", _number_text(aggregate.mx)),
        ):
            name, placeholder = f"#{kind}{index}", f":{kind}{index}"
            names[name] = rollup_attribute(cast(RollupKind, kind), metric)
            values[placeholder] = {"N": value}
            item[names[name]] = values[placeholder]
            if kind in ("n", "s"):
                adds.append(f"{name} {placeholder}")
            else:
                # A new metric in the bucket gets its min and max here, sparing writes after.
                sets.append(f"{name} = if_not_exists({name}, {placeholder})")
    update = {
        "TableName": table_name(),
        "Key": _rollup_item_key(key),
        "UpdateExpression": "SET " + ", ".join(sets) + " ADD " + ", ".join(adds),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    return update, _item_bytes(item)


def _client() -> DynamoDBClient:
    # The botocore client of the cached PynamoDB connection: one per container. The writes use
    # it directly because they need what PynamoDB's TransactWrite and Model.update drop: the
    # response's ConsumedCapacity, and (for the latest values) attribute names per metric.
    return cast("DynamoDBClient", aws.dynamodb().client)


@dataclass(frozen=True, slots=True)
class _Commit:
    """What a chunk's transaction wrote: its parts, the rollup items it updated with the size
    each was estimated at, and whether DynamoDB reported the capacity it consumed."""

    parts: list[_Part]
    rollup_sizes: dict[_RollupKey, int]
    reported: bool


def _transact_items(
    parts: Sequence[_Part],
) -> tuple[list[dict[str, Any]], float, dict[_RollupKey, int]]:
    """The puts (first, so a cancellation reason's index is the part's index) and one update
    per rollup item, aggregated over the parts; their estimated write units (a rollup item
    sized as these parts alone would make it: `_apply_extremes_and_latest` corrects that from
    the stored item); and the estimated size of each rollup item."""
    items: list[dict[str, Any]] = []
    units = 0.0
    for part in parts:
        put = part.item.get_save_kwargs_from_instance(
            condition=RawReadingsModel.pk.does_not_exist()
        )
        items.append({"Put": put})
        units += 2 * _write_units(part.size)
    sizes: dict[_RollupKey, int] = {}
    for key, metrics in _aggregate(parts).items():
        update, size = _rollup_update(key, metrics)
        items.append({"Update": update})
        units += 2 * _write_units(size)
        sizes[key] = size
    return items, units, sizes


def _write_chunk(chunk: list[_Part], meter: _Meter) -> _Commit:
    """Commit the chunk's new parts with their counts and sums; answers what was written.

    A cancellation whose reasons name raw puts (ConditionalCheckFailed: that message is stored)
    drops those parts and retries with the rest. Each such retry drops at least one part and
    conflicts retry at most _CONFLICT_RETRIES times, so the loop is bounded."""
    pending = list(chunk)
    conflicts = 0
    while pending:
        items, estimate, sizes = _transact_items(pending)
        try:
            response = _client().transact_write_items(
                TransactItems=cast(Any, items), ReturnConsumedCapacity="TOTAL"
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            # A cancelled transaction reports no capacity; counted as if it had committed,
            # an upper bound (DynamoDB does not document it as free).
            meter.wrote(None, estimate)
            codes = [
                (reason or {}).get("Code") or "None"
                for reason in error.response.get("CancellationReasons", [])
            ]
            stored = {i for i, code in enumerate(codes[: len(pending)]) if code == _CHECK_FAILED}
            if stored:
                pending = [part for i, part in enumerate(pending) if i not in stored]
                continue
            if conflicts < _CONFLICT_RETRIES and set(codes) <= _RETRYABLE | {"None"}:
                conflicts += 1
                # Jittered backoff so two conflicting writers do not collide again.
                time.sleep(0.05 * 2**conflicts * (0.5 + random.random()))  # noqa: S311
                continue
            raise
        reported = cast(Mapping[str, Any], response)
        meter.wrote(reported, estimate)
        return _Commit(pending, sizes, _reported_units(reported) is not None)
    return _Commit([], {}, False)


def _newest_values(parts: Iterable[_Part]) -> dict[str, dict[str, tuple[int, float]]]:
    """Per device, the newest (ts, value) of every metric in the parts."""
    newest: dict[str, dict[str, tuple[int, float]]] = {}
    for part in parts:
        values = newest.setdefault(part.device_id, {})
        for reading in part.readings:
            for metric, value in reading.metrics.items():
                if metric not in values or values[metric][0] <= reading.ts_ms:
                    values[metric] = (reading.ts_ms, value)
    return newest


def _apply_extremes_and_latest(chunk: list[_Part], commit: _Commit, meter: _Meter) -> None:
    """Min, max and latest values: idempotent, so outside the transaction, and written only
    where a read says the chunk beats what is stored (an eventually consistent read costs a
    fraction of a write, and most readings set no new extreme). The writes stay conditional:
    a concurrent writer may have moved the value since the read. Duplicates take part, so a
    redelivery repairs an invocation that died right after its transaction.

    The read also sizes the rollup items the transaction updated: one holding metrics the
    chunk did not send costs more than estimated, and the meter is corrected."""
    aggregates = _aggregate(chunk)
    newest = _newest_values(chunk)
    rollup_keys = {key: (rollup_key(key[0], key[1]), bucket_sort_key(key[2])) for key in aggregates}
    latest_keys = {device: (latest_key(device), LATEST_SK) for device in newest}
    stored = _read_items([*rollup_keys.values(), *latest_keys.values()], meter)

    for key, estimated in commit.rollup_sizes.items():
        item = stored.get(rollup_keys[key])
        if item is not None and _write_units(_item_bytes(item)) > _write_units(estimated):
            extra = 2 * (_write_units(_item_bytes(item)) - _write_units(estimated))
            meter.corrected(extra, reported=commit.reported)

    for key, metrics in aggregates.items():
        item = stored.get(rollup_keys[key])
        changes: list[tuple[RollupKind, str, float]] = []
        for metric, aggregate in sorted(metrics.items()):
            lowest = _number(item, rollup_attribute("mn", metric))
            highest = _number(item, rollup_attribute("mx", metric))
            if lowest is None or aggregate.mn < lowest:
                changes.append(("mn", metric, aggregate.mn))
            if highest is None or aggregate.mx > highest:
                changes.append(("mx", metric, aggregate.mx))
        # In groups, so the condition expression stays well under DynamoDB's 4 KB.
        for start in range(0, len(changes), _EXTREMES_PER_UPDATE):
            group = changes[start : start + _EXTREMES_PER_UPDATE]
            _set_extremes(key, group, stored=item, meter=meter)

    for device, values in newest.items():
        _update_latest(device, values, stored.get(latest_keys[device]), meter)


def _set_extremes(
    key: _RollupKey,
    changes: Sequence[tuple[RollupKind, str, float]],
    *,
    stored: Mapping[str, Any] | None,
    meter: _Meter,
) -> None:
    """One conditional update for every min and max of the item the chunk beats. If a
    concurrent writer beat one of them since the read, the whole update fails its condition
    and each change is tried alone."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    assignments: list[str] = []
    conditions: list[str] = []
    after: dict[str, Any] = dict(stored or _rollup_item_key(key))
    counts: dict[str, str] = {}  # one placeholder per metric, even when both extremes move
    for index, (kind, metric, value) in enumerate(changes):
        name, placeholder = f"#a{index}", f":a{index}"
        count = counts.setdefault(metric, f"#c{len(counts)}")
        names[name] = rollup_attribute(kind, metric)
        names[count] = rollup_attribute("n", metric)
        values[placeholder] = {"N": _number_text(value)}
        after[names[name]] = values[placeholder]
        assignments.append(f"{name} = {placeholder}")
        beaten = f"{name} > {placeholder}" if kind == "mn" else f"{name} < {placeholder}"
        # attribute_exists(count): never create a stray item or attribute holding only a min
        # (a bucket whose rollup expired while its raw item, kept longer, was redelivered).
        conditions.append(
            f"attribute_exists({count}) AND (attribute_not_exists({name}) OR {beaten})"
        )
    update = {
        "TableName": table_name(),
        "Key": _rollup_item_key(key),
        "UpdateExpression": "SET " + ", ".join(assignments),
        "ConditionExpression": " AND ".join(f"({condition})" for condition in conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    estimate = _write_units(max(_item_bytes(stored or {}), _item_bytes(after)))
    if not _conditional_update(update, estimate=estimate, meter=meter) and len(changes) > 1:
        for change in changes:
            _set_extremes(key, [change], stored=stored, meter=meter)


def _update_latest(
    device_id: str,
    values: dict[str, tuple[int, float]],
    stored: Mapping[str, Any] | None,
    meter: _Meter,
) -> None:
    """One update per device per chunk, conditioned on the newest time stored: an older batch
    never overwrites. Accepted: an older batch's metric that the newer one lacked is skipped
    too (one condition guards the whole item)."""
    newest_ms = max(ts for ts, _ in values.values())
    stored_newest = _number(stored, LATEST_NEWEST)
    if stored_newest is not None and stored_newest > newest_ms:
        return
    # Within a newer batch, leave a metric whose stored value is as new or newer (overlapping
    # batches); what the read saw, a concurrent writer can only have made newer still.
    changes = {
        metric: (ts, value)
        for metric, (ts, value) in values.items()
        if (stored_ts := _number(stored, LATEST_TIME_PREFIX + metric)) is None
        or stored_ts < ts
        or (stored_ts == ts and _number(stored, LATEST_VALUE_PREFIX + metric) != value)
    }
    if not changes:
        return  # nothing newer than what is stored (a redelivery, an overlap)
    names = {"#t": LATEST_NEWEST}
    attribute_values: dict[str, Any] = {":t": {"N": str(newest_ms)}}
    assignments = ["#t = :t"]
    after: dict[str, Any] = dict(stored or {})
    after[LATEST_NEWEST] = {"N": str(newest_ms)}
    for index, (metric, (ts, value)) in enumerate(sorted(changes.items())):
        names[f"#v{index}"] = LATEST_VALUE_PREFIX + metric
        names[f"#t{index}"] = LATEST_TIME_PREFIX + metric
        attribute_values[f":v{index}"] = {"N": _number_text(value)}
        attribute_values[f":t{index}"] = {"N": str(ts)}
        assignments += [f"#v{index} = :v{index}", f"#t{index} = :t{index}"]
        after[LATEST_VALUE_PREFIX + metric] = attribute_values[f":v{index}"]
        after[LATEST_TIME_PREFIX + metric] = attribute_values[f":t{index}"]
    after.update(pk={"S": latest_key(device_id)}, sk={"S": LATEST_SK})
    update = {
        "TableName": table_name(),
        "Key": {"pk": {"S": latest_key(device_id)}, "sk": {"S": LATEST_SK}},
        "UpdateExpression": "SET " + ", ".join(assignments),
        "ConditionExpression": "attribute_not_exists(#t) OR #t <= :t",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": attribute_values,
    }
    estimate = _write_units(max(_item_bytes(stored or {}), _item_bytes(after)))
    _conditional_update(update, estimate=estimate, meter=meter)


def _conditional_update(update: dict[str, Any], *, estimate: float, meter: _Meter) -> bool:
    """Whether the update was applied (its condition held)."""
    try:
        response = _client().update_item(**update, ReturnConsumedCapacity="TOTAL")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        # Someone stored a better value since the read: fine. DynamoDB still charges it.
        meter.wrote(None, estimate)
        return False
    meter.wrote(cast(Mapping[str, Any], response), estimate)
    return True


def _read_items(
    keys: Sequence[tuple[str, str]], meter: _Meter
) -> dict[tuple[str, str], dict[str, Any]]:
    """Items by (pk, sk). A key left unprocessed reads as missing: its write just happens."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), _BATCH_GET_KEYS):
        batch = unique[start : start + _BATCH_GET_KEYS]
        response = _client().batch_get_item(
            RequestItems={
                table_name(): {
                    "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in batch],
                    # Eventually consistent, at half the units: a stale answer only costs a
                    # write that its condition then refuses, never a wrong value.
                    "ConsistentRead": False,
                }
            },
            ReturnConsumedCapacity="TOTAL",
        )
        items = cast(list[dict[str, Any]], response["Responses"].get(table_name(), []))
        misses = len(batch) - len(items)
        # Per item 1 unit a started 4 KB (a miss counts 1), halved for an eventual read.
        estimate = (misses + sum(math.ceil(max(_item_bytes(i), 1) / 4096) for i in items)) / 2
        meter.read(cast(Mapping[str, Any], response), estimate)
        for item in items:
            found[(item["pk"]["S"], item["sk"]["S"])] = item
    return found


# --- capacity -------------------------------------------------------------------------------


def _reported_units(response: Mapping[str, Any] | None) -> float | None:
    consumed = (response or {}).get("ConsumedCapacity")
    if isinstance(consumed, dict):
        consumed = [consumed]
    if not consumed:
        return None
    return float(sum(entry.get("CapacityUnits", 0) for entry in consumed))


def _write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def _item_bytes(item: Mapping[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (strings as UTF-8, numbers about a
    byte per two significant digits plus one, maps and lists 3 bytes plus a byte per element)."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: Mapping[str, Any]) -> int:
    kind, data = next(iter(value.items()))
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        digits = len(Decimal(str(data)).normalize().as_tuple().digits)
        return 1 + math.ceil(digits / 2)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_bytes(v) + 1 for k, v in data.items())
    if kind == "L":
        return 3 + sum(_value_bytes(v) + 1 for v in data)
    return 1 if kind in ("BOOL", "NULL") else len(str(data))


def _number(item: Mapping[str, Any] | None, name: str) -> float | None:
    if not item or name not in item:
        return None
    return float(item[name]["N"])


def _number_text(value: float) -> str:
    return json.dumps(_compact(value))


# --- reading --------------------------------------------------------------------------------


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

    raw: one point per reading. Items are read in sort-key order (their first reading), so two
    messages that overlap in time (a device resending buffered readings) interleave by
    message, not by reading. Rollups: one point per bucket whose start lies in
    [start rounded down to the bucket, end]. `limit` counts points."""
    if not _METRIC_NAME.fullmatch(metric):
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
            "TableName": table_name(),
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
            "ProjectionExpression": "#pk, #sk, #n, #s, #mn, #mx",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "Limit": min(page_size - len(points), _ROLLUP_ITEMS_PER_PAGE - examined),
        }
        if start_key is not None:
            request["ExclusiveStartKey"] = start_key
        response = _client().query(**request)
        items = cast(list[dict[str, Any]], response.get("Items", []))
        examined += len(items)
        for item in items:
            count = _number(item, names["#n"])
            if not count:
                continue
            total = _number(item, names["#s"]) or 0.0
            points.append(
                RollupPoint(
                    ts=item["sk"]["S"],
                    count=int(count),
                    sum=total,
                    min=_number(item, names["#mn"]),
                    max=_number(item, names["#mx"]),
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
    response = _client().get_item(
        TableName=table_name(),
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
