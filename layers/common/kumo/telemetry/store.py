"""Storing telemetry: the writes behind both ingestion paths (kumo.telemetry.ingest), each
reading value once, with its rollups (kumo.telemetry.rollups) and the devices' latest values.

Identity (ADR 26)
-----------------
A value is identified by (device, reading time, metric): an instant holds one value of a
metric. Sent again with the same value it is a duplicate (skipped, counted); sent with
another value it is a conflict: not stored, not counted in any rollup, and reported (the
first value stays). So a device that resends an overlapping window, a message redelivered
by SQS or republished by the device, and the same reading twice in one batch all store and
count each value once, whatever the message boundaries.

Storage (table TELEMETRY_TABLE; keys in kumo.telemetry.models)
--------------------------------------------------------------
- Raw readings are packed per device and minute slot (`RAW_SLOT_MS`): a slot is a series of
  fragments numbered from 0, each holding the values one write added. A write reads the
  slot's fragments (one strongly consistent Query per run of adjacent slots), keeps only the
  values not stored yet, and puts them as the next fragment with `attribute_not_exists`: two
  writers of one slot cannot both take a number, and the loser reads again and decides
  again. A fragment is never rewritten, so a write costs the size of what it adds (where
  merging into one item per slot would pay for the whole item on every write), and a resend
  of stored values writes nothing at all.
- Rollups: one item per device, resolution (minute, hour, day) and bucket, holding the count,
  sum, min and max of every metric sent in that bucket as flat attributes (`n_<metric>`,
  `s_<metric>`, `mn_<metric>`, `mx_<metric>`). Count and sum are ADDed in the transaction
  that puts the fragments holding the values they count, so they count new values only.
- Latest values: one item per device, never moved back by an older batch.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
    RAW_SLOT_MS,
    RawReadingsModel,
    bucket_sort_key,
    compact,
    iso_ms,
    latest_key,
    number,
    number_text,
    raw_fragment_key,
    raw_fragment_seq,
    raw_key,
    raw_slot,
    rollup_key,
    telemetry_table,
)

logger = Logger(child=True)

MAX_TRANSACT_ACTIONS: Final = 100
# TransactWriteItems takes at most 4 MB in all: the puts and a bound on the rollup updates'
# request size (`rollups.request_bytes`) stay under this, leaving a margin.
_MAX_TRANSACT_BYTES: Final = 3_500_000
# Fragments are cut at this packed size, well under DynamoDB's 400 KB item limit.
_MAX_PART_BYTES: Final = 300_000
# The packed size of the widest reading the contract allows (32 metrics of 64 characters,
# values like -1e15) stays under this: a cut fragment is at least _MAX_PART_BYTES minus it.
_MAX_READING_BYTES: Final = 4_096
# A chunk is read, decided and written again when another writer took one of its fragment
# numbers or its transaction conflicted: a few attempts before SQS redelivers.
_ATTEMPTS: Final = 6
_RETRYABLE: Final = frozenset({"TransactionConflict", "ThrottlingError"})
# The cancellation reason of a fragment put whose number is taken: the slot moved on.
_CHECK_FAILED: Final = "ConditionalCheckFailed"
_BATCH_GET_KEYS: Final = 100

type Origin = tuple[int, int]  # (index of the batch in the call, index of the reading in it)
type SlotKey = tuple[str, int]  # device, slot start
type Instant = tuple[int, str]  # reading time, metric


@dataclass(frozen=True, slots=True)
class Conflict:
    """A value refused because its instant already holds another value of the metric."""

    batch: int  # index of the batch in the store_batches call
    reading: int  # index of the reading in that batch's readings
    metric: str
    ts_ms: int
    value: float  # as sent
    stored: float  # what the instant holds (or what an earlier reading of the call gave it)

    @property
    def reason(self) -> str:
        return (
            f"metric {self.metric!r} at {iso_ms(self.ts_ms)} already holds "
            f"{number_text(self.stored)}; {number_text(self.value)} was not stored"
        )


@dataclass(frozen=True, slots=True)
class StoreReport:
    stored: int  # readings of which at least one value was written now
    # Readings none of whose values was new, and none conflicting: a redelivery, a resend.
    duplicates: int
    # Values refused for a conflict (a reading can have several, and some values stored).
    conflicts: tuple[Conflict, ...]
    # As DynamoDB reports them (ReturnConsumedCapacity=TOTAL). A response that reports nothing
    # (moto's TransactWriteItems, a cancelled transaction, a failed condition) counts as its
    # estimate. Moto reports a flat 0.5 per UpdateItem, so under moto prefer the estimate.
    write_units: float
    # Computed from item sizes by DynamoDB's rules (1 unit per started KB per item, twice in a
    # transaction, a failed condition still charged), whatever the endpoint reports.
    estimated_write_units: float
    # The reads of the slots (strongly consistent) and the eventually consistent reads that
    # spare the min/max and latest writes that would not change anything (as reported, or 1
    # unit per started 4 KB per item, half that for an eventual read).
    read_units: float


@dataclass(slots=True)
class _Slot:
    """What one call sends to one device's slot: every value sent per instant, each with the
    readings that sent it, in the order sent."""

    device_id: str
    org_id: str
    slot_ms: int
    retention_days: int
    sent: dict[Instant, dict[float, list[Origin]]] = field(default_factory=dict)

    @property
    def key(self) -> SlotKey:
        return self.device_id, self.slot_ms

    def packed_bytes(self) -> int:
        """A bound on the packed size of every value this slot could add."""
        by_ts: dict[int, dict[str, float]] = {}
        for (ts, metric), values in self.sent.items():
            by_ts.setdefault(ts, {})[metric] = next(iter(values))
        return len(_dumps(_packed([Reading(ts, m) for ts, m in sorted(by_ts.items())])).encode())


@dataclass(frozen=True, slots=True)
class _Stored:
    """A slot as read: the value of every instant it holds, and its next fragment number."""

    values: dict[Instant, float]
    next_seq: int


@dataclass(frozen=True, slots=True)
class _Part:
    """One fragment to put: values of one slot, not stored before."""

    device_id: str
    item: RawReadingsModel
    readings: tuple[Reading, ...]
    size: int


@dataclass(frozen=True, slots=True)
class _Values:
    """Readings of one device (kumo.telemetry.rollups.DeviceReadings)."""

    device_id: str
    readings: tuple[Reading, ...]


@dataclass(slots=True)
class _Decision:
    """A chunk decided against what its slots hold."""

    parts: list[_Part] = field(default_factory=list)
    new: set[Origin] = field(default_factory=set)
    duplicate: set[Origin] = field(default_factory=set)
    conflicts: list[Conflict] = field(default_factory=list)
    # The values sent that the slots hold (new or again), for min, max and latest.
    accepted: list[_Values] = field(default_factory=list)


def store_batches(
    batches: Sequence[Batch], *, retention_days: int | Mapping[str, int] = 7
) -> StoreReport:
    """Store each value once, with its rollups and the devices' latest values.

    Raw items expire `retention_days` after their last reading: one number for every batch,
    or days by org id (the org's setting; an org missing from the mapping gets 7).

    Safe to call again with the same readings, cut into messages the same way or not (an SQS
    redelivery, a device resending an overlapping window): stored values count as duplicates
    and change no count or sum. Raises on a DynamoDB failure, so the caller's message is
    retried; what was already stored then counts as duplicates."""
    slots = _slots_of(batches, retention_days)
    meter = capacity.Meter()
    new: set[Origin] = set()
    duplicate: set[Origin] = set()
    conflicts: list[Conflict] = []
    # One device's slots side by side, so a chunk aggregates their rollups into one update.
    ordered = [slots[key] for key in sorted(slots)]
    for chunk in _chunks(ordered):
        decision, commit = _write_chunk(chunk, meter)
        new |= decision.new
        duplicate |= decision.duplicate
        conflicts += decision.conflicts
        _apply_extremes_and_latest(decision.accepted, commit, meter)
    conflicted = {(c.batch, c.reading) for c in conflicts}
    duplicates = len(duplicate - new - conflicted)
    if duplicates:
        logger.info("telemetry duplicates skipped", readings=duplicates)
    if conflicts:
        logger.warning(
            "telemetry values conflicting with stored ones refused",
            values=len(conflicts),
            conflicts=[
                {"device_id": batches[c.batch].device_id, "reason": c.reason}
                for c in conflicts[:20]
            ],
        )
    return StoreReport(
        stored=len(new),
        duplicates=duplicates,
        conflicts=tuple(sorted(conflicts, key=lambda c: (c.batch, c.reading, c.metric))),
        write_units=meter.write_units,
        estimated_write_units=meter.estimated_write_units,
        read_units=meter.read_units,
    )


def without_conflicts(batches: Sequence[Batch], report: StoreReport) -> list[Batch]:
    """The batches without the values the report refused (for alerts and the live stream):
    a reading left without a value is left out."""
    refused: dict[Origin, set[str]] = {}
    for conflict in report.conflicts:
        refused.setdefault((conflict.batch, conflict.reading), set()).add(conflict.metric)
    if not refused:
        return list(batches)
    kept: list[Batch] = []
    for b, batch in enumerate(batches):
        readings = []
        for r, reading in enumerate(batch.readings):
            metrics = {
                name: value
                for name, value in reading.metrics.items()
                if name not in refused.get((b, r), ())
            }
            if metrics:
                readings.append(Reading(reading.ts_ms, metrics))
        if readings:
            kept.append(Batch(batch.org_id, batch.device_id, tuple(readings)))
    return kept


def _slots_of(
    batches: Sequence[Batch], retention_days: int | Mapping[str, int]
) -> dict[SlotKey, _Slot]:
    slots: dict[SlotKey, _Slot] = {}
    for b, batch in enumerate(batches):
        if not batch.device_id or not batch.org_id:
            raise ValueError("a batch needs its org and device ids")
        days = (
            retention_days
            if isinstance(retention_days, int)
            else retention_days.get(batch.org_id, 7)
        )
        for r, reading in enumerate(batch.readings):
            slot_ms = raw_slot(reading.ts_ms)
            slot = slots.get((batch.device_id, slot_ms))
            if slot is None:
                slot = slots[(batch.device_id, slot_ms)] = _Slot(
                    batch.device_id, batch.org_id, slot_ms, days
                )
            for metric, value in reading.metrics.items():
                slot.sent.setdefault((reading.ts_ms, metric), {}).setdefault(value, []).append(
                    (b, r)
                )
    return slots


def _packed(readings: Sequence[Reading]) -> list[list[Any]]:
    return [
        [reading.ts_ms, {name: compact(reading.metrics[name]) for name in sorted(reading.metrics)}]
        for reading in readings
    ]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _rollup_keys(slot: _Slot) -> set[rollups.RollupKey]:
    # A slot lies inside one minute, so inside one bucket of every resolution.
    return rollups.rollup_keys(slot.device_id, Reading(slot.slot_ms, {}))


def _chunks(slots: Sequence[_Slot]) -> Iterable[list[_Slot]]:
    """Slots grouped so that the fragments they could add plus their distinct rollup updates
    (one per device, resolution and bucket) fit one transaction, whatever is stored already:
    what a slot adds is a subset of what it was sent."""
    chunk: list[_Slot] = []
    keys: set[rollups.RollupKey] = set()
    puts = 0
    size = 0
    for slot in slots:
        packed = slot.packed_bytes()
        slot_puts = max(1, math.ceil(packed / (_MAX_PART_BYTES - _MAX_READING_BYTES)))
        slot_keys = _rollup_keys(slot)
        metrics = {metric for _, metric in slot.sent}
        slot_bytes = packed + slot_puts * 512 + rollups.request_bytes(len(slot_keys), metrics)
        if chunk and (
            puts + slot_puts + len(keys | slot_keys) > MAX_TRANSACT_ACTIONS
            or size + slot_bytes > _MAX_TRANSACT_BYTES
        ):
            yield chunk
            chunk, keys, puts, size = [], set(), 0, 0
        chunk.append(slot)
        keys |= slot_keys
        puts += slot_puts
        size += slot_bytes
    if chunk:
        yield chunk


def _read_slots(chunk: Sequence[_Slot], meter: capacity.Meter) -> dict[SlotKey, _Stored]:
    """What the chunk's slots hold: one strongly consistent Query per run of adjacent slots of
    a device (so a fragment written just before is seen). An item of the layout before ADR 26
    that starts inside a slot counts too; one that started in an earlier minute is not read."""
    runs: list[tuple[str, int, int]] = []
    for slot in sorted(chunk, key=lambda slot: slot.key):
        if runs and runs[-1][0] == slot.device_id and runs[-1][2] + RAW_SLOT_MS == slot.slot_ms:
            runs[-1] = (slot.device_id, runs[-1][1], slot.slot_ms)
        else:
            runs.append((slot.device_id, slot.slot_ms, slot.slot_ms))
    values: dict[SlotKey, dict[Instant, float]] = {slot.key: {} for slot in chunk}
    next_seq: dict[SlotKey, int] = dict.fromkeys(values, 0)
    slot_starts = {iso_ms(slot.slot_ms): slot.slot_ms for slot in chunk}
    for device_id, first, last in runs:
        request: dict[str, Any] = {
            "TableName": telemetry_table(),
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {
                ":pk": {"S": raw_key(device_id)},
                ":lo": {"S": iso_ms(first)},
                # '~' sorts after '#': every item of the last slot is in.
                ":hi": {"S": iso_ms(last + RAW_SLOT_MS - 1) + "~"},
            },
            "ProjectionExpression": "#sk, #r",
            "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk", "#r": "r"},
            "ConsistentRead": True,
            "ReturnConsumedCapacity": "TOTAL",
        }
        while True:
            response = models.client().query(**request)
            items = cast(list[dict[str, Any]], response.get("Items", []))
            estimate = max(1, math.ceil(sum(capacity.item_bytes(i) for i in items) / 4096))
            meter.read(cast(Mapping[str, Any], response), estimate)
            for item in items:
                sort_key = str(item["sk"]["S"])
                seq = raw_fragment_seq(sort_key)
                for ts, metrics in json.loads(item["r"]["S"]):
                    slot_key = (device_id, raw_slot(int(ts)))
                    if slot_key not in values:
                        continue
                    for metric, value in metrics.items():
                        values[slot_key].setdefault((int(ts), metric), float(value))
                fragment_of = slot_starts.get(sort_key[: len(iso_ms(0))])
                if seq is not None and fragment_of is not None:
                    slot_key = (device_id, fragment_of)
                    if slot_key in next_seq:
                        next_seq[slot_key] = max(next_seq[slot_key], seq + 1)
            start = response.get("LastEvaluatedKey")
            if not start:
                break
            request["ExclusiveStartKey"] = start
    return {key: _Stored(values[key], next_seq[key]) for key in values}


def _decide(chunk: Sequence[_Slot], stored: Mapping[SlotKey, _Stored]) -> _Decision:
    """Per instant: a value the slot holds is a duplicate, another value a conflict; an instant
    the slot lacks takes the first value sent (its first reading new, the others duplicates),
    and any other value sent for it is a conflict. The new values become fragments."""
    decision = _Decision()
    for slot in chunk:
        held = stored[slot.key]
        adding: dict[int, dict[str, float]] = {}
        accepted: dict[int, dict[str, float]] = {}
        for (ts, metric), values in slot.sent.items():
            current = held.values.get((ts, metric))
            for index, (value, origins) in enumerate(values.items()):
                if current is None and index == 0:
                    adding.setdefault(ts, {})[metric] = value
                    accepted.setdefault(ts, {})[metric] = value
                    decision.new.add(origins[0])
                    decision.duplicate.update(origins[1:])
                elif value == (current if current is not None else next(iter(values))):
                    accepted.setdefault(ts, {})[metric] = value
                    decision.duplicate.update(origins)
                else:
                    first = current if current is not None else next(iter(values))
                    decision.conflicts += [
                        Conflict(b, r, metric, ts, value, first) for b, r in origins
                    ]
        if accepted:
            decision.accepted.append(
                _Values(slot.device_id, tuple(Reading(t, m) for t, m in sorted(accepted.items())))
            )
        readings = [Reading(ts, metrics) for ts, metrics in sorted(adding.items())]
        decision.parts += _fragments(slot, readings, held.next_seq)
    return decision


def _fragments(slot: _Slot, readings: Sequence[Reading], seq: int) -> list[_Part]:
    """The new readings of a slot as fragments numbered from `seq`, cut at _MAX_PART_BYTES."""
    parts: list[_Part] = []
    current: list[Reading] = []
    size = 0
    for reading in readings:
        reading_size = len(_dumps(_packed([reading])).encode())
        if current and size + reading_size > _MAX_PART_BYTES:
            parts.append(_fragment(slot, current, seq + len(parts)))
            current, size = [], 0
        current.append(reading)
        size += reading_size
    if current:
        parts.append(_fragment(slot, current, seq + len(parts)))
    return parts


def _fragment(slot: _Slot, readings: list[Reading], seq: int) -> _Part:
    last_ms = readings[-1].ts_ms
    item = RawReadingsModel(
        raw_key(slot.device_id),
        raw_fragment_key(slot.slot_ms, seq),
        r=_dumps(_packed(readings)),
        n=len(readings),
        last_ms=last_ms,
        org_id=slot.org_id,
        expires_at=last_ms // 1000 + slot.retention_days * 86_400,
    )
    return _Part(
        device_id=slot.device_id,
        item=item,
        readings=tuple(readings),
        size=capacity.item_bytes(item.serialize()),
    )


@dataclass(frozen=True, slots=True)
class _Commit:
    """What a chunk's transaction wrote: the rollup items it updated with the size each was
    estimated at, and whether DynamoDB reported the capacity it consumed."""

    rollup_sizes: dict[rollups.RollupKey, int]
    reported: bool


def _transact_items(
    parts: Sequence[_Part],
) -> tuple[list[dict[str, Any]], float, dict[rollups.RollupKey, int]]:
    """The fragment puts (first, so a cancellation reason's index is the part's index) and one
    update per rollup item, aggregated over the parts; their estimated write units (a rollup
    item sized as these parts alone would make it: `_apply_extremes_and_latest` corrects that
    from the stored item); and the estimated size of each rollup item."""
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


def _write_chunk(chunk: list[_Slot], meter: capacity.Meter) -> tuple[_Decision, _Commit]:
    """Read the chunk's slots, decide, and commit the new fragments with their counts and
    sums in one transaction. A fragment number taken meanwhile (another writer of the slot)
    or a transaction conflict cancels it: read, decide and try again, at most _ATTEMPTS
    times, then raise (the caller's message is retried)."""
    for attempt in range(1, _ATTEMPTS + 1):
        decision = _decide(chunk, _read_slots(chunk, meter))
        if not decision.parts:
            return decision, _Commit({}, False)
        items, estimate, sizes = _transact_items(decision.parts)
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
            codes = {
                (reason or {}).get("Code") or "None"
                for reason in error.response.get("CancellationReasons", [])
            }
            if attempt == _ATTEMPTS or not codes <= _RETRYABLE | {_CHECK_FAILED, "None"}:
                raise
            logger.info("telemetry slot written meanwhile: read again", codes=sorted(codes))
            if codes & _RETRYABLE:
                # Jittered backoff so two conflicting writers do not collide again.
                time.sleep(0.05 * 2**attempt * (0.5 + random.random()))  # noqa: S311
            continue
        reported = cast(Mapping[str, Any], response)
        meter.wrote(reported, estimate)
        return decision, _Commit(sizes, capacity.reported_units(reported) is not None)
    raise AssertionError("unreachable")  # pragma: no cover


def _newest_values(parts: Iterable[_Values]) -> dict[str, dict[str, tuple[int, float]]]:
    """Per device, the newest (ts, value) of every metric in the parts."""
    newest: dict[str, dict[str, tuple[int, float]]] = {}
    for part in parts:
        values = newest.setdefault(part.device_id, {})
        for reading in part.readings:
            for metric, value in reading.metrics.items():
                if metric not in values or values[metric][0] <= reading.ts_ms:
                    values[metric] = (reading.ts_ms, value)
    return newest


def _apply_extremes_and_latest(
    chunk: list[_Values], commit: _Commit, meter: capacity.Meter
) -> None:
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
