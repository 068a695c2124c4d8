"""Archive of expired raw telemetry (ArchiveTelemetryFunction, fed by the telemetry table's
stream) and the listing behind GET /api/v1/devices/{device_id}/archives.

Raw items expire by TTL after their org's retention (kumo.orgs.service). DynamoDB's TTL
deletion puts a REMOVE record with the item's old image on the table's stream, marked
`userIdentity: {type: Service, principalId: dynamodb.amazonaws.com}`; the event source
mapping's filter passes only those, for raw items (`RAW#` keys), and `archive_records` checks
the same again (an engine or a mapping without the filter must not archive a rollup or a
user's delete). ADR 14 has the reasons.

Object layout::

    s3://DATA_BUCKET/archive/<org>/<device>/<yyyy>/<mm>/<dd>/<first reading>-<digest>.jsonl.gz

gzip-compressed JSON Lines, one reading a line, oldest first::

    {"ts": "2024-05-01T12:00:00.000Z", "metrics": {"temperature": 21.5},
     "device_id": "...", "org_id": "...", "item": "<raw item sort key>"}

A stream batch's readings are grouped per org, device and UTC day of the reading: one object
per group. The name is the group's first reading time and a digest of the raw item keys in
it, and the gzip header carries no time, so a redelivered batch writes the same bytes to the
same key: an overwrite, never a copy. A retry that groups records differently (a partial
failure retried from its first failed record, or a bisected batch) can put a reading into a
second object too; `item` and `ts` identify a reading, so a reader drops such repeats.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from kumo.core import aws
from kumo.core.config import get_settings
from kumo.core.errors import invalid
from kumo.core.ids import is_id
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor
from kumo.devices import service as devices
from kumo.telemetry.models import RAW_PREFIX, iso_ms
from kumo.telemetry.schemas import DAY_PATTERN, ArchiveOut

_DAY: Final = re.compile(DAY_PATTERN)

logger = Logger(child=True)

ARCHIVE_PREFIX: Final = "archive/"
TTL_PRINCIPAL: Final = "dynamodb.amazonaws.com"
# Long enough to start a download, short enough that a leaked link soon stops working.
DOWNLOAD_URL_SECONDS: Final = 300


@dataclass
class ArchiveReport:
    objects: int = 0
    readings: int = 0
    skipped: int = 0  # records that are not TTL removals of raw items
    # Sequence numbers of the records not archived, in batch order.
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Line:
    ts_ms: int
    item: str
    metrics: Mapping[str, float]


type _GroupKey = tuple[str, str, str]  # org, device, day (YYYY-MM-DD)


class MalformedRecord(ValueError):
    """A raw item's image this code cannot read: reported as failed, so it is retried and
    then lands in the mapping's on-failure queue instead of vanishing."""


# --- keys ---------------------------------------------------------------------------------


def device_prefix(org_id: str, device_id: str) -> str:
    return f"{ARCHIVE_PREFIX}{org_id}/{device_id}/"


def day_prefix(org_id: str, device_id: str, day: str) -> str:
    return device_prefix(org_id, device_id) + day.replace("-", "/") + "/"


def object_key(org_id: str, device_id: str, day: str, lines: Sequence[_Line]) -> str:
    """Derived from the raw item keys the object holds: the same records, the same key."""
    items = sorted({line.item for line in lines})
    digest = hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]
    first = iso_ms(min(line.ts_ms for line in lines)).replace("-", "").replace(":", "")
    return f"{day_prefix(org_id, device_id, day)}{first}-{digest}.jsonl.gz"


# --- the stream ---------------------------------------------------------------------------


def is_raw_ttl_removal(record: Mapping[str, Any]) -> bool:
    """A record of DynamoDB deleting an expired raw item (not a user's delete, not a rollup)."""
    identity = record.get("userIdentity") or {}
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    partition = (keys.get("pk") or {}).get("S", "")
    return (
        record.get("eventName") == "REMOVE"
        and identity.get("type") == "Service"
        and identity.get("principalId") == TTL_PRINCIPAL
        and isinstance(partition, str)
        and partition.startswith(RAW_PREFIX)
    )


def _decode(record: Mapping[str, Any]) -> tuple[str, str, list[_Line]]:
    """(org, device, readings) of the removed raw item's old image."""
    try:
        image = record["dynamodb"]["OldImage"]
        device_id = str(image["pk"]["S"]).removeprefix(RAW_PREFIX)
        org_id = str(image["org_id"]["S"])
        item = str(image["sk"]["S"])
        packed = json.loads(image["r"]["S"])
        lines = [_Line(ts_ms=int(ts), item=item, metrics=dict(values)) for ts, values in packed]
    except (KeyError, TypeError, ValueError) as error:
        raise MalformedRecord(f"unreadable raw item image: {error!r}") from error
    # Ids become S3 key segments: only well-formed ones, never a '/' or '..'.
    if not (is_id(org_id) and is_id(device_id)) or not lines:
        raise MalformedRecord("raw item image without valid ids or readings")
    return org_id, device_id, lines


def _body(org_id: str, device_id: str, lines: Sequence[_Line]) -> bytes:
    text = "".join(
        json.dumps(
            {
                "ts": iso_ms(line.ts_ms),
                "metrics": dict(line.metrics),
                "device_id": device_id,
                "org_id": org_id,
                "item": line.item,
            },
            separators=(",", ":"),
        )
        + "\n"
        for line in sorted(lines, key=lambda line: (line.ts_ms, line.item))
    )
    # mtime=0: the same lines compress to the same bytes, so a redelivery is a true overwrite.
    return gzip.compress(text.encode(), mtime=0)


def archive_records(records: Sequence[Mapping[str, Any]]) -> ArchiveReport:
    """Write the expired raw readings of one stream batch to S3, one object per org, device
    and day. A record whose object could not be written, or whose image is unreadable, is
    reported in `failed` (nothing raised), so the caller answers a partial batch failure."""
    report = ArchiveReport()
    groups: dict[_GroupKey, list[_Line]] = defaultdict(list)
    members: dict[_GroupKey, set[str]] = defaultdict(set)
    failed: set[str] = set()
    order: list[str] = []
    for record in records:
        sequence = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
        order.append(sequence)
        if not is_raw_ttl_removal(record):
            report.skipped += 1
            continue
        try:
            org_id, device_id, lines = _decode(record)
        except MalformedRecord as error:
            logger.error("expired raw item not archived", sequence=sequence, reason=str(error))
            failed.add(sequence)
            continue
        for line in lines:
            # An item spans up to ten minutes, so it can reach over midnight: split by day.
            group = (org_id, device_id, iso_ms(line.ts_ms)[:10])
            groups[group].append(line)
            members[group].add(sequence)

    bucket = get_settings().data_bucket
    for (org_id, device_id, day), lines in groups.items():
        key = object_key(org_id, device_id, day, lines)
        try:
            aws.s3().put_object(
                Bucket=bucket,
                Key=key,
                Body=_body(org_id, device_id, lines),
                ContentType="application/gzip",
            )
        except (BotoCoreError, ClientError):
            logger.exception("archive object not written", key=key)
            failed |= members[(org_id, device_id, day)]
            continue
        report.objects += 1
        report.readings += len(lines)
    report.failed = [sequence for sequence in order if sequence in failed]
    logger.info(
        "expired raw telemetry archived",
        records=len(records),
        skipped=report.skipped,
        objects=report.objects,
        readings=report.readings,
        failed=len(report.failed),
    )
    return report


# --- listing ------------------------------------------------------------------------------


def _day(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        if not _DAY.fullmatch(value):  # date.fromisoformat also reads 20260101 and 2026-W01-1
            raise ValueError(value)
        return date.fromisoformat(value).isoformat()
    except ValueError as error:
        raise invalid(name, "Use a day as YYYY-MM-DD.") from error


def list_archives(
    *,
    user_id: str,
    device_id: str,
    start: str | None,
    end: str | None,
    limit: int | None,
    cursor: str | None,
) -> tuple[list[ArchiveOut], str | None]:
    """The device's archive objects from day `start` to day `end` (both included, UTC),
    oldest first, each with a short-lived download link. Org viewers and up."""
    device = devices.get_device_for(user_id, device_id, "viewer")
    first, last = _day(start, "from"), _day(end, "to")
    if first and last and first > last:
        raise invalid("from", "'from' must not be after 'to'.")
    page_size = clamp_limit(limit)
    prefix = device_prefix(device.org_id, device_id)
    position = decode_cursor(cursor, partition=("pk", prefix))
    # Every key of a day sorts after the day's prefix, so StartAfter it starts on that day.
    start_after = day_prefix(device.org_id, device_id, first) if first else prefix
    if position is not None:
        start_after = max(start_after, str(position.get("key", {}).get("S", "")))
    request: dict[str, Any] = {
        "Bucket": get_settings().data_bucket,
        "Prefix": prefix,
        "StartAfter": start_after,
        "MaxKeys": page_size,
    }
    answer = aws.s3().list_objects_v2(**request)
    archives: list[ArchiveOut] = []
    for entry in answer.get("Contents", []):
        key = str(entry["Key"])
        day = key.removeprefix(prefix)[:10].replace("/", "-")
        if last and day > last:
            return archives, None
        archives.append(
            ArchiveOut(
                day=day,
                key=key,
                size=int(entry["Size"]),
                url=_download_url(key),
                url_expires_in=DOWNLOAD_URL_SECONDS,
            )
        )
    if not answer.get("IsTruncated") or not archives:
        return archives, None
    return archives, encode_cursor({"pk": {"S": prefix}, "key": {"S": archives[-1].key}})


def _download_url(key: str) -> str:
    url: str = aws.s3().generate_presigned_url(
        "get_object",
        Params={"Bucket": get_settings().data_bucket, "Key": key},
        ExpiresIn=DOWNLOAD_URL_SECONDS,
    )
    return url
