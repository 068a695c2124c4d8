"""Storing telemetry: the writes behind both ingestion paths (kumo.telemetry.ingest), each
message once, with its rollups (kumo.telemetry.rollups) and the devices' latest values.

Storage (table TELEMETRY_TABLE; keys in kumo.telemetry.models)
--------------------------------------------------------------
- Raw readings are packed: one item per message, keyed by its first reading's time and a
  digest of its content, so a redelivered or republished message lands on the same key and
  its conditional put makes it a no-op. A message whose rollups would not fit one
  transaction, or that spans more than `RAW_SPAN_MS`, is cut into parts, each its own item.
- Rollups: one item per device, resolution (minute, hour, day) and bucket, holding the count,
  sum, min and max of every metric sent in that bucket as flat attributes (`n_<metric>`,
  `s_<metric>`, `mn_<metric>`, `mx_<metric>`), so a message updates three rollup items per
  bucket combination whatever its metric count; kumo.telemetry.rollups says how each
  aggregate stays exact under redelivery.
- Latest values: one item per device, never moved back by an older batch.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from kumo.telemetry import capacity, models, rollups
from kumo.telemetry.contract import Batch, Reading
from kumo.telemetry.models import (
    LATEST_NEWEST,
    LATEST_SK,
    LATEST_TIME_PREFIX,
    LATEST_VALUE_PREFIX,
    RAW_SPAN_MS,
    RawReadingsModel,
    bucket_sort_key,
    compact,
    latest_key,
    number,
    number_text,
    raw_key,
    raw_sort_key,
    rollup_key,
    telemetry_table,
)

logger = Logger(child=True)

MAX_TRANSACT_ACTIONS: Final = 100
# TransactWriteItems takes at most 4 MB in all: the puts and a bound on the rollup updates'
# request size (`rollups.request_bytes`) stay under this, leaving a margin.
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
class _Part:
    """One raw item: a whole message, or a piece of one too large for one transaction."""

    device_id: str
    pk: str
    sk: str
    item: RawReadingsModel
    readings: tuple[Reading, ...]
    rollup_keys: frozenset[rollups.RollupKey]
    size: int
    # An upper bound on the bytes of this part's rollup updates in a transaction request.
    rollup_bytes: int


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

    meter = capacity.Meter()
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


def _packed(readings: Sequence[Reading]) -> list[list[Any]]:
    return [
        [reading.ts_ms, {name: compact(reading.metrics[name]) for name in sorted(reading.metrics)}]
        for reading in readings
    ]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _parts_of(batch: Batch, *, retention_days: int) -> list[_Part]:
    """Readings in canonical order, cut where a part would outgrow a transaction (its put and
    its rollup updates: three per distinct minute, hour and day, so at most 15 within
    RAW_SPAN_MS, and the action limit is a guard), the item size limit, or RAW_SPAN_MS. The cut
    depends on the content only, so a redelivered message is cut the same way and every part
    finds its twin."""
    readings = sorted(batch.readings, key=_canonical_order)
    parts: list[_Part] = []
    current: list[Reading] = []
    keys: set[rollups.RollupKey] = set()
    size = 0
    for reading in readings:
        reading_keys = rollups.rollup_keys(batch.device_id, reading)
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
    batch: Batch, readings: list[Reading], keys: set[rollups.RollupKey], retention_days: int
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
        size=capacity.item_bytes(item.serialize()),
        rollup_bytes=rollups.request_bytes(len(keys), metrics),
    )


def _chunks(parts: Sequence[_Part]) -> Iterable[list[_Part]]:
    """Parts grouped so each group's puts plus its distinct rollup updates (one per device,
    resolution and bucket) fit one transaction."""
    chunk: list[_Part] = []
    keys: set[rollups.RollupKey] = set()
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


@dataclass(frozen=True, slots=True)
class _Commit:
    """What a chunk's transaction wrote: its parts, the rollup items it updated with the size
    each was estimated at, and whether DynamoDB reported the capacity it consumed."""

    parts: list[_Part]
    rollup_sizes: dict[rollups.RollupKey, int]
    reported: bool


def _transact_items(
    parts: Sequence[_Part],
) -> tuple[list[dict[str, Any]], float, dict[rollups.RollupKey, int]]:
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
        units += 2 * capacity.write_units(part.size)
    sizes: dict[rollups.RollupKey, int] = {}
    for key, metrics in rollups.aggregate(parts).items():
        update, size = rollups.transact_update(key, metrics)
        items.append({"Update": update})
        units += 2 * capacity.write_units(size)
        sizes[key] = size
    return items, units, sizes


def _write_chunk(chunk: list[_Part], meter: capacity.Meter) -> _Commit:
    """Commit the chunk's new parts with their counts and sums; answers what was written.

    A cancellation whose reasons name raw puts (ConditionalCheckFailed: that message is stored)
    drops those parts and retries with the rest. Each such retry drops at least one part and
    conflicts retry at most _CONFLICT_RETRIES times, so the loop is bounded."""
    pending = list(chunk)
    conflicts = 0
    while pending:
        items, estimate, sizes = _transact_items(pending)
        try:
            response = models.client().transact_write_items(
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
        return _Commit(pending, sizes, capacity.reported_units(reported) is not None)
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


def _apply_extremes_and_latest(chunk: list[_Part], commit: _Commit, meter: capacity.Meter) -> None:
    """Min, max and latest values: idempotent, so outside the transaction, and written only
    where a read says the chunk beats what is stored (an eventually consistent read costs a
    fraction of a write, and most readings set no new extreme). The writes stay conditional:
    a concurrent writer may have moved the value since the read. Duplicates take part, so a
    redelivery repairs an invocation that died right after its transaction.

    The read also sizes the rollup items the transaction updated: one holding metrics the
    chunk did not send costs more than estimated, and the meter is corrected."""
    aggregates = rollups.aggregate(chunk)
    newest = _newest_values(chunk)
    rollup_keys = {key: (rollup_key(key[0], key[1]), bucket_sort_key(key[2])) for key in aggregates}
    latest_keys = {device: (latest_key(device), LATEST_SK) for device in newest}
    stored = _read_items([*rollup_keys.values(), *latest_keys.values()], meter)

    for key, estimated in commit.rollup_sizes.items():
        item = stored.get(rollup_keys[key])
        if item is None:
            continue
        actual, expected = (
            capacity.write_units(capacity.item_bytes(item)),
            capacity.write_units(estimated),
        )
        if actual > expected:
            meter.corrected(2 * (actual - expected), reported=commit.reported)

    for key, metrics in aggregates.items():
        rollups.lower_and_raise(key, metrics, stored=stored.get(rollup_keys[key]), meter=meter)

    for device, values in newest.items():
        _update_latest(device, values, stored.get(latest_keys[device]), meter)


def _update_latest(
    device_id: str,
    values: dict[str, tuple[int, float]],
    stored: Mapping[str, Any] | None,
    meter: capacity.Meter,
) -> None:
    """One update per device per chunk, conditioned on the newest time stored: an older batch
    never overwrites. Accepted: an older batch's metric that the newer one lacked is skipped
    too (one condition guards the whole item)."""
    newest_ms = max(ts for ts, _ in values.values())
    stored_newest = number(stored, LATEST_NEWEST)
    if stored_newest is not None and stored_newest > newest_ms:
        return
    # Within a newer batch, leave a metric whose stored value is as new or newer (overlapping
    # batches); what the read saw, a concurrent writer can only have made newer still.
    changes = {
        metric: (ts, value)
        for metric, (ts, value) in values.items()
        if (stored_ts := number(stored, LATEST_TIME_PREFIX + metric)) is None
        or stored_ts < ts
        or (stored_ts == ts and number(stored, LATEST_VALUE_PREFIX + metric) != value)
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
        attribute_values[f":v{index}"] = {"N": number_text(value)}
        attribute_values[f":t{index}"] = {"N": str(ts)}
        assignments += [f"#v{index} = :v{index}", f"#t{index} = :t{index}"]
        after[LATEST_VALUE_PREFIX + metric] = attribute_values[f":v{index}"]
        after[LATEST_TIME_PREFIX + metric] = attribute_values[f":t{index}"]
    after.update(pk={"S": latest_key(device_id)}, sk={"S": LATEST_SK})
    update = {
        "TableName": telemetry_table(),
        "Key": {"pk": {"S": latest_key(device_id)}, "sk": {"S": LATEST_SK}},
        "UpdateExpression": "SET " + ", ".join(assignments),
        "ConditionExpression": "attribute_not_exists(#t) OR #t <= :t",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": attribute_values,
    }
    estimate = capacity.write_units(
        max(capacity.item_bytes(stored or {}), capacity.item_bytes(after))
    )
    capacity.conditional_update(update, estimate=estimate, meter=meter)


def _read_items(
    keys: Sequence[tuple[str, str]], meter: capacity.Meter
) -> dict[tuple[str, str], dict[str, Any]]:
    """Items by (pk, sk). A key left unprocessed reads as missing: its write just happens."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), _BATCH_GET_KEYS):
        batch = unique[start : start + _BATCH_GET_KEYS]
        response = models.client().batch_get_item(
            RequestItems={
                telemetry_table(): {
                    "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in batch],
                    # Eventually consistent, at half the units: a stale answer only costs a
                    # write that its condition then refuses, never a wrong value.
                    "ConsistentRead": False,
                }
            },
            ReturnConsumedCapacity="TOTAL",
        )
        items = cast(list[dict[str, Any]], response["Responses"].get(telemetry_table(), []))
        misses = len(batch) - len(items)
        # Per item 1 unit a started 4 KB (a miss counts 1), halved for an eventual read.
        estimate = (
            misses + sum(math.ceil(max(capacity.item_bytes(i), 1) / 4096) for i in items)
        ) / 2
        meter.read(cast(Mapping[str, Any], response), estimate)
        for item in items:
            found[(item["pk"]["S"], item["sk"]["S"])] = item
    return found
