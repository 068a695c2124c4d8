"""Telemetry's own problem types."""

from __future__ import annotations

from kumo.core.errors import Conflict, PayloadTooLarge, ValidationFailed

__all__ = ["ExportLimitReached", "IdempotencyKeyReused", "PayloadTooLarge"]


class ExportLimitReached(Conflict):
    slug, title = "export-limit-reached", "Export limit reached"


class IdempotencyKeyReused(ValidationFailed):
    slug, title = "idempotency-key-reused", "Idempotency key reused"
