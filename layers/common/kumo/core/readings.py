"""What the consumers of telemetry read of a device's batch of readings (alert evaluation,
live pushes): declared in core so that they need not import the telemetry context that calls
them, and the package graph stays acyclic (docs/adr/0020). kumo.telemetry's batches fit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class Reading(Protocol):
    @property
    def ts_ms(self) -> int: ...

    @property
    def metrics(self) -> Mapping[str, float]: ...


class Batch(Protocol):
    @property
    def org_id(self) -> str: ...

    @property
    def device_id(self) -> str: ...

    @property
    def readings(self) -> Sequence[Reading]: ...
