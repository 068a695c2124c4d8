"""Telemetry's own problem types."""

from __future__ import annotations

from kumo.core.errors import Conflict, KumoError, ValidationFailed


class PayloadTooLarge(KumoError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class ExportLimitReached(Conflict):
    slug, title = "export-limit-reached", "Export limit reached"


class IdempotencyKeyReused(ValidationFailed):
    slug, title = "idempotency-key-reused", "Idempotency key reused"
