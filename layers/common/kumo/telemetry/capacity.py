"""What telemetry writes cost: DynamoDB's item sizes and capacity units, reported by the
endpoint or estimated by DynamoDB's rules, summed per store call (the benchmark's cost figures
come from here)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from botocore.exceptions import ClientError

from kumo.telemetry import models


@dataclass(slots=True)
class Meter:
    write_units: float = 0.0
    estimated_write_units: float = 0.0
    read_units: float = 0.0

    def wrote(self, response: Mapping[str, Any] | None, estimate: float) -> None:
        reported = reported_units(response)
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
        reported = reported_units(response)
        self.read_units += estimate if reported is None else reported


def conditional_update(update: dict[str, Any], *, estimate: float, meter: Meter) -> bool:
    """Whether the update was applied (its condition held)."""
    try:
        response = models.client().update_item(**update, ReturnConsumedCapacity="TOTAL")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        # Someone stored a better value since the read: fine. DynamoDB still charges it.
        meter.wrote(None, estimate)
        return False
    meter.wrote(cast(Mapping[str, Any], response), estimate)
    return True


def reported_units(response: Mapping[str, Any] | None) -> float | None:
    consumed = (response or {}).get("ConsumedCapacity")
    if isinstance(consumed, dict):
        consumed = [consumed]
    if not consumed:
        return None
    return float(sum(entry.get("CapacityUnits", 0) for entry in consumed))


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def item_bytes(item: Mapping[str, Any]) -> int:
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
