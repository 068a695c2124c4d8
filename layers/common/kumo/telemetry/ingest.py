"""Telemetry ingestion: the SQS batch the IoT topic rule fills, and the device HTTP route.

Both paths parse with kumo.telemetry.contract and end in kumo.telemetry.store.store_batches,
then evaluate the alert rules on what they stored (kumo.alerts.evaluate) and push it to
WebSocket subscribers (kumo.realtime.fanout). Bad readings are rejected and logged one by
one; the good readings beside them are kept. A value whose instant (device, time, metric)
already holds another value is refused too, after the read of what is stored: HTTP answers it
among `rejected`, both paths count it (ReadingsConflicting) and log it (ADR 26). The topic
names the org and the device, and is checked against the registry: a message for a device
that does not exist, or that names another org than the device's own, is dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from kumo.alerts.evaluate import evaluate_batches
from kumo.core import clock, metrics
from kumo.core.errors import ValidationFailed, invalid
from kumo.devices import service as devices
from kumo.orgs import service as orgs
from kumo.realtime import fanout
from kumo.telemetry import contract, store
from kumo.telemetry.schemas import ReadingsAccepted

logger = Logger(child=True)


@dataclass
class IngestReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0  # values refused: their instant holds another value (ADR 26)
    dropped_messages: int = 0
    write_units: float = 0.0


def _now_ms() -> int:
    return int(clock.now() * 1000)


def _rejections(rejections: list[contract.Rejection]) -> list[dict[str, Any]]:
    return [{"index": r.index, "reason": r.reason} for r in rejections]


def ingest_http(*, org_id: str, device_id: str, payload: Any, size: int) -> ReadingsAccepted:
    """POST /api/v1/device/readings: the same validation and storage as MQTT."""
    if size > contract.MAX_PAYLOAD_BYTES:
        message = f"The payload must be at most {contract.MAX_PAYLOAD_BYTES // 1024} KiB."
        raise invalid("body", message)
    readings, rejections = contract.parse_payload(payload, now_ms=_now_ms())
    if rejections:
        metrics.count(metrics.READINGS_REJECTED, len(rejections))
        logger.info("readings rejected", device_id=device_id, rejected=_rejections(rejections))
    if not readings:
        raise ValidationFailed("No valid reading in the payload.", errors=_field_errors(rejections))
    batch = contract.Batch(org_id, device_id, tuple(readings))
    report = store.store_batches([batch], retention_days=_retention([batch]))
    # Duplicates too: alert transitions are conditional, so evaluating them again is harmless.
    # Refused values are not: the instant holds another one.
    kept = store.without_conflicts([batch], report)
    evaluate_batches(kept)
    fanout.publish_readings(kept)
    devices.mark_seen({device_id})
    _count_stored(report)
    refused = sorted(
        [*_rejections(rejections), *_conflicts(report.conflicts, rejections, len(readings))],
        key=lambda entry: int(entry["index"]),
    )
    return ReadingsAccepted(accepted=report.stored, duplicates=report.duplicates, rejected=refused)


def _conflicts(
    conflicts: tuple[store.Conflict, ...], rejections: list[contract.Rejection], valid: int
) -> list[dict[str, Any]]:
    """One rejection per reading with refused values, by its index in the payload (the valid
    readings are the payload's entries that were not rejected, in order)."""
    refused = {r.index for r in rejections}
    payload_index = [i for i in range(valid + len(refused)) if i not in refused]
    reasons: dict[int, list[str]] = {}
    for conflict in conflicts:
        reasons.setdefault(payload_index[conflict.reading], []).append(conflict.reason)
    return [
        {"index": index, "reason": "conflicting value: " + "; ".join(texts)}
        for index, texts in sorted(reasons.items())
    ]


def _count_stored(stored: store.StoreReport) -> None:
    metrics.count(metrics.READINGS_ACCEPTED, stored.stored)
    if stored.duplicates:
        metrics.count(metrics.READINGS_DUPLICATE, stored.duplicates)
    if stored.conflicts:
        metrics.count(metrics.READINGS_CONFLICTING, len(stored.conflicts))


def _retention(batches: list[contract.Batch]) -> dict[str, int]:
    """Each org's raw retention, from the orgs context (cached per warm container there)."""
    return {org_id: orgs.telemetry_retention_days(org_id) for org_id in {b.org_id for b in batches}}


def _field_errors(rejections: list[contract.Rejection]) -> list[dict[str, str]]:
    return [{"field": f"readings.{r.index}", "message": r.reason} for r in rejections] or [
        {"field": "body", "message": 'expected a reading or {"readings": [...]}'}
    ]


def _device_org(device_id: str, cache: dict[str, str | None]) -> str | None:
    if device_id not in cache:
        cache[device_id] = devices.enabled_device_org(device_id)
    return cache[device_id]


def ingest_records(records: list[dict[str, Any]]) -> IngestReport:
    """One SQS batch from the telemetry rule. A storage error fails the whole batch (SQS
    redelivers it and duplicates are no-ops); a bad message is dropped and logged."""
    report = IngestReport()
    batches: list[contract.Batch] = []
    device_orgs: dict[str, str | None] = {}
    now_ms = _now_ms()
    for record in records:
        try:
            message = json.loads(record["body"])
            org_id, device_id = str(message["org_id"]), str(message["device_id"])
        except (KeyError, TypeError, ValueError):
            report.dropped_messages += 1
            logger.warning(
                "telemetry message dropped: unreadable", message_id=record.get("messageId")
            )
            continue
        if _device_org(device_id, device_orgs) != org_id:
            report.dropped_messages += 1
            logger.warning("telemetry for an unknown device dropped", device_id=device_id)
            continue
        # Judged by when the message reached IoT Core, not by how long it then queued.
        received = message.get("received_at")
        arrived_ms = received if isinstance(received, int) else now_ms
        readings, rejections = contract.parse_payload(message, now_ms=arrived_ms)
        if rejections:
            report.rejected += len(rejections)
            logger.info("readings rejected", device_id=device_id, rejected=_rejections(rejections))
        if readings:
            batches.append(contract.Batch(org_id, device_id, tuple(readings)))
    if batches:
        stored = store.store_batches(batches, retention_days=_retention(batches))
        kept = store.without_conflicts(batches, stored)
        evaluate_batches(kept)
        fanout.publish_readings(kept)
        report.accepted, report.duplicates = stored.stored, stored.duplicates
        report.conflicts = len(stored.conflicts)
        report.write_units = stored.write_units
        devices.mark_seen({b.device_id for b in batches})
        _count_stored(stored)
    if report.rejected:
        metrics.count(metrics.READINGS_REJECTED, report.rejected)
    if report.dropped_messages:
        metrics.count(metrics.TELEMETRY_MESSAGES_DROPPED, report.dropped_messages)
    logger.info(
        "telemetry batch ingested",
        messages=len(records),
        accepted=report.accepted,
        duplicates=report.duplicates,
        rejected=report.rejected,
        conflicts=report.conflicts,
        dropped=report.dropped_messages,
        write_units=report.write_units,
    )
    return report
