"""Numbers DynamoDB can store. Its Number type holds magnitudes from 1e-130 to just under
1e126, so a finite float below that range (say 9e-270, or the subnormal 5e-324) fails the
write that stores it. Inputs are checked where they are read; the upper end is far beyond
every limit Kumo sets (1e15)."""

from __future__ import annotations

from typing import Any, Final

MIN_MAGNITUDE: Final = 1e-130
# `storable` as JSON Schema, for the OpenAPI document.
STORABLE_SCHEMA: Final[list[dict[str, Any]]] = [
    {"const": 0},
    {"minimum": MIN_MAGNITUDE},
    {"maximum": -MIN_MAGNITUDE},
]


def storable(value: float) -> bool:
    return value == 0 or abs(value) >= MIN_MAGNITUDE
