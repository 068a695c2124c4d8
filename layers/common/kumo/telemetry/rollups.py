"""Rollups: count, sum, min and max of every metric of a device per minute, hour and day, kept
as one item per device, resolution and bucket (keys and attribute names in
kumo.telemetry.models).

Count and sum are exactly-once: kumo.telemetry.store adds them in the same transaction as the
raw puts they count (`transact_update`: ADD creates a missing attribute and the item; min and
max are set there too when new, by if_not_exists). Lowering a min or raising a max is
idempotent and happens after the transaction (`lower_and_raise`), only where the chunk's value
beats the stored one, one conditional update per item; duplicates take part in that step too,
so a redelivery repairs an invocation that died between the transaction and it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Protocol, cast

from kumo.telemetry import capacity, models
from kumo.telemetry.contract import Reading
from kumo.telemetry.models import Resolution, RollupKind

type RollupKey = tuple[str, Resolution, int]  # device, resolution, bucket start

# Mins and maxes of one rollup item set by one conditional update after the transaction.
_EXTREMES_PER_UPDATE: Final = 16


class DeviceReadings(Protocol):
    """Readings of one device: a message, or a part of one."""

    @property
    def device_id(self) -> str: ...

    @property
    def readings(self) -> Sequence[Reading]: ...


@dataclass(slots=True)
class Aggregate:
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


def rollup_keys(device_id: str, reading: Reading) -> set[RollupKey]:
    return {
        (device_id, resolution, models.bucket_start(reading.ts_ms, resolution))
        for resolution in models.RESOLUTIONS
    }


def request_bytes(keys: int, metrics: Iterable[str]) -> int:
    """A bound on the request bytes of `keys` rollup updates covering these metrics: key and
    TTL, and per metric four attribute names, values and their share of the expression."""
    return keys * (512 + sum(4 * len(metric) + 192 for metric in metrics))


def aggregate(parts: Iterable[DeviceReadings]) -> dict[RollupKey, dict[str, Aggregate]]:
    """Per rollup item (device, resolution, bucket), the aggregate of each metric."""
    aggregates: dict[RollupKey, dict[str, Aggregate]] = {}
    for part in parts:
        for reading in part.readings:
            for resolution in models.RESOLUTIONS:
                key = (part.device_id, resolution, models.bucket_start(reading.ts_ms, resolution))
                metrics = aggregates.setdefault(key, {})
                for metric, value in reading.metrics.items():
                    metrics.setdefault(metric, Aggregate()).add(value)
    return aggregates


def item_key(key: RollupKey) -> dict[str, Any]:
    device_id, resolution, bucket_ms = key
    return {
        "pk": {"S": models.rollup_key(device_id, resolution)},
        "sk": {"S": models.bucket_sort_key(bucket_ms)},
    }


def transact_update(key: RollupKey, metrics: Mapping[str, Aggregate]) -> tuple[dict[str, Any], int]:
    """The transactional update of one rollup item: ADD count and sum of every metric (ADD
    creates a missing attribute, and the item), min and max set only where missing; and the
    size of the item as this update alone would make it."""
    _, resolution, bucket_ms = key
    expires_at = {"N": str(bucket_ms // 1000 + models.ROLLUP_RETENTION_SECONDS[resolution])}
    names = {"#e": "expires_at"}
    values: dict[str, Any] = {":e": expires_at}
    sets = ["#e = :e"]
    adds: list[str] = []
    item: dict[str, Any] = {**item_key(key), "expires_at": expires_at}
    for index, (metric, aggregate) in enumerate(sorted(metrics.items())):
        for kind, value in (
            ("n", str(aggregate.n)),
            ("s", models.number_text(float(aggregate.s))),
            ("mn", models.number_text(aggregate.mn)),
            ("mx", models.number_text(aggregate.mx)),
        ):
            name, placeholder = f"#{kind}{index}", f":{kind}{index}"
            names[name] = models.rollup_attribute(cast(RollupKind, kind), metric)
            values[placeholder] = {"N": value}
            item[names[name]] = values[placeholder]
            if kind in ("n", "s"):
                adds.append(f"{name} {placeholder}")
            else:
                # A new metric in the bucket gets its min and max here, sparing writes after.
                sets.append(f"{name} = if_not_exists({name}, {placeholder})")
    update = {
        "TableName": models.telemetry_table(),
        "Key": item_key(key),
        "UpdateExpression": "SET " + ", ".join(sets) + " ADD " + ", ".join(adds),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    return update, capacity.item_bytes(item)


def _set_extremes(
    key: RollupKey,
    changes: Sequence[tuple[RollupKind, str, float]],
    *,
    stored: Mapping[str, Any] | None,
    meter: capacity.Meter,
) -> None:
    """One conditional update for every min and max of the item the chunk beats. If a
    concurrent writer beat one of them since the read, the whole update fails its condition
    and each change is tried alone."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    assignments: list[str] = []
    conditions: list[str] = []
    after: dict[str, Any] = dict(stored or item_key(key))
    counts: dict[str, str] = {}  # one placeholder per metric, even when both extremes move
    for index, (kind, metric, value) in enumerate(changes):
        name, placeholder = f"#a{index}", f":a{index}"
        count = counts.setdefault(metric, f"#c{len(counts)}")
        names[name] = models.rollup_attribute(kind, metric)
        names[count] = models.rollup_attribute("n", metric)
        values[placeholder] = {"N": models.number_text(value)}
        after[names[name]] = values[placeholder]
        assignments.append(f"{name} = {placeholder}")
        beaten = f"{name} > {placeholder}" if kind == "mn" else f"{name} < {placeholder}"
        # attribute_exists(count): never create a stray item or attribute holding only a min
        # (a bucket whose rollup expired while its raw item, kept longer, was redelivered).
        conditions.append(
            f"attribute_exists({count}) AND (attribute_not_exists({name}) OR {beaten})"
        )
    update = {
        "TableName": models.telemetry_table(),
        "Key": item_key(key),
        "UpdateExpression": "SET " + ", ".join(assignments),
        "ConditionExpression": " AND ".join(f"({condition})" for condition in conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    estimate = capacity.write_units(
        max(capacity.item_bytes(stored or {}), capacity.item_bytes(after))
    )
    if not capacity.conditional_update(update, estimate=estimate, meter=meter) and len(changes) > 1:
        for change in changes:
            _set_extremes(key, [change], stored=stored, meter=meter)


def lower_and_raise(
    key: RollupKey,
    metrics: Mapping[str, Aggregate],
    *,
    stored: Mapping[str, Any] | None,
    meter: capacity.Meter,
) -> None:
    """The mins and maxes of one rollup item that these aggregates beat, against the item as
    read (`stored`), written in groups so the condition expression stays well under 4 KB."""
    changes: list[tuple[RollupKind, str, float]] = []
    for metric, aggregate in sorted(metrics.items()):
        lowest = models.number(stored, models.rollup_attribute("mn", metric))
        highest = models.number(stored, models.rollup_attribute("mx", metric))
        if lowest is None or aggregate.mn < lowest:
            changes.append(("mn", metric, aggregate.mn))
        if highest is None or aggregate.mx > highest:
            changes.append(("mx", metric, aggregate.mx))
    for start in range(0, len(changes), _EXTREMES_PER_UPDATE):
        _set_extremes(
            key, changes[start : start + _EXTREMES_PER_UPDATE], stored=stored, meter=meter
        )
