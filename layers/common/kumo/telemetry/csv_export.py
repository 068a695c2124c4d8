"""Building a CSV export: the worker of SQS kumo-<stage>-exports
(functions/telemetry/build_export). The request side and the states are in
kumo.telemetry.exports; ADR 15.

The worker claims the export, reads every page of every metric through the readings route's
read path (kumo.telemetry.query), writes CSV to
s3://DATA_BUCKET/exports/<org>/<device>/<id>.csv (one PutObject, or a multipart upload past
PART_BYTES) and marks it ready only while it still holds the lease.

CSV: `timestamp,<metric>,...` (raw) or `timestamp,<metric>_count,_sum,_min,_max,_avg,...`
(rollups), one row per timestamp (ISO 8601 UTC, milliseconds, oldest first), an empty cell
where a metric has no value at that time; CRLF line ends (RFC 4180).
"""

from __future__ import annotations

import csv
import heapq
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from kumo.core import batch, clock
from kumo.core.config import get_settings
from kumo.core.errors import NotFound
from kumo.core.ids import new_id
from kumo.core.pagination import MAX_LIMIT
from kumo.telemetry import exports, query
from kumo.telemetry.exports import ACTIVE, s3
from kumo.telemetry.models import RAW_SPAN_MS, ExportModel, iso_ms
from kumo.telemetry.schemas import Resolution

logger = Logger(child=True)

# Hard caps on one file: past either the export fails as too large (never truncated).
MAX_ROWS: Final = 200_000
MAX_BYTES: Final = 64 * 1024 * 1024
# Parts of a multipart upload (S3 wants at least 5 MiB for all but the last); what is held in
# memory besides the rows waiting to be ordered.
PART_BYTES: Final = 8 * 1024 * 1024
# A claim's lease outlives the invocation that made it by this margin.
LEASE_MARGIN_MS: Final = 60_000
# The build stops while this much of the invocation is left, to record and release.
RESERVE_MS: Final = 20_000
MAX_RECEIVES: Final = 3  # the queue's maxReceiveCount


class ExportTooLarge(Exception):
    """The file would pass a cap; trying again would not change that."""


class OutOfTime(Exception):
    """The invocation is about to end; the message comes back and the build starts over."""


class Busy(Exception):
    """Another build holds the export's lease; the message comes back after it."""


def _points(device_id: str, metric: str, export: ExportModel) -> Iterator[tuple[int, Any]]:
    """Every point of one metric, as the readings route pages them: (epoch ms, point)."""
    cursor: str | None = None
    while True:
        points, cursor = query.query_readings(
            device_id=device_id,
            metric=metric,
            start_ms=int(export.start_ms),
            end_ms=int(export.end_ms),
            resolution=export.resolution,  # type: ignore[arg-type]
            limit=MAX_LIMIT,
            cursor=cursor,
        )
        for point in points:
            yield _epoch_ms(point.ts), point
        if cursor is None:
            return


def raw_rows(
    readings: Iterable[tuple[int, dict[str, float]]], metrics: Sequence[str]
) -> Iterator[tuple[int, dict[str, float]]]:
    """Rows by time from raw readings that come within RAW_SPAN_MS of time order (items are
    read by their first reading and span at most that): rows older than the last reading
    minus the span are complete. Only the chosen metrics are kept."""
    wanted = set(metrics)
    pending: dict[int, dict[str, float]] = {}
    waiting: list[int] = []
    for ts, values in readings:
        chosen = {m: v for m, v in values.items() if m in wanted}
        if not chosen:
            continue
        row = pending.get(ts)
        if row is None:
            row = pending[ts] = {}
            heapq.heappush(waiting, ts)
        row.update(chosen)  # a second value at the same instant replaces the first
        while waiting and waiting[0] < ts - RAW_SPAN_MS:
            done = heapq.heappop(waiting)
            yield done, pending.pop(done)
    while waiting:
        done = heapq.heappop(waiting)
        yield done, pending.pop(done)


def _epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def merge_rows(
    streams: dict[str, Iterator[tuple[int, Any]]], disorder_ms: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows by time from one stream per metric (rollup buckets), each in order give or take
    `disorder_ms`: after a point at t a stream never yields one before t - disorder_ms, so rows
    older than the slowest stream's last point minus that are complete. Only those in between
    are held."""
    frontier: list[tuple[int, str]] = []
    pending: dict[int, dict[str, Any]] = {}
    waiting: list[int] = []

    def pull(metric: str) -> None:
        for ts, point in streams[metric]:
            row = pending.get(ts)
            if row is None:
                row = pending[ts] = {}
                heapq.heappush(waiting, ts)
            row[metric] = point  # a second value at the same instant replaces the first
            heapq.heappush(frontier, (ts, metric))
            return

    for metric in streams:
        pull(metric)
    while frontier:
        _, metric = heapq.heappop(frontier)
        pull(metric)
        complete_before = frontier[0][0] - disorder_ms if frontier else None
        while waiting and (complete_before is None or waiting[0] < complete_before):
            ts = heapq.heappop(waiting)
            yield ts, pending.pop(ts)


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


ROLLUP_FIELDS: Final = ("count", "sum", "min", "max", "avg")


def header(metrics: Sequence[str], resolution: Resolution) -> list[str]:
    if resolution == "raw":
        return ["timestamp", *metrics]
    return ["timestamp", *(f"{m}_{field}" for m in metrics for field in ROLLUP_FIELDS)]


def _cells(row: dict[str, Any], metrics: Sequence[str], resolution: str) -> list[str]:
    if resolution == "raw":
        return [_number(float(row[m])) if m in row else "" for m in metrics]
    cells: list[str] = []
    for metric in metrics:
        point = row.get(metric)
        if point is None:
            cells.extend([""] * len(ROLLUP_FIELDS))
        else:
            cells.append(str(point.count))
            cells.extend(_number(getattr(point, f)) for f in ROLLUP_FIELDS[1:])
    return cells


class _Upload:
    """CSV bytes to one S3 object: one PutObject when small, else a multipart upload whose
    parts leave memory as they fill. Nothing is visible at the key before `close`."""

    def __init__(self, bucket: str, key: str) -> None:
        self.bucket, self.key = bucket, key
        self.buffer = io.BytesIO()
        self.size = 0
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > MAX_BYTES:
            raise ExportTooLarge(f"The file would pass {MAX_BYTES // (1024 * 1024)} MiB.")
        view = memoryview(data)
        while view:
            room = PART_BYTES - self.buffer.tell()
            self.buffer.write(view[:room])
            view = view[room:]
            if self.buffer.tell() >= PART_BYTES:
                self._send_part()

    def _send_part(self) -> None:
        if self.upload_id is None:
            created = s3().create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType="text/csv"
            )
            self.upload_id = created["UploadId"]
        number = len(self.parts) + 1
        sent = s3().upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=self.buffer.getvalue(),
        )
        self.parts.append({"PartNumber": number, "ETag": sent["ETag"]})
        self.buffer = io.BytesIO()

    def close(self) -> None:
        if self.upload_id is None:
            s3().put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=self.buffer.getvalue(),
                ContentType="text/csv",
            )
            return
        if self.buffer.tell():
            self._send_part()
        s3().complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    def abort(self) -> None:
        if self.upload_id is not None:
            try:
                s3().abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
                )
            except (BotoCoreError, ClientError):
                logger.warning("multipart upload not aborted", key=self.key)


@dataclass(frozen=True, slots=True)
class Built:
    rows: int
    size: int


def write_csv(export: ExportModel, upload: _Upload, remaining_ms: Callable[[], int]) -> Built:
    """Stream the export's rows into `upload`; stops at a cap or when time runs short."""
    metrics: list[str] = json.loads(export.metrics_json)
    resolution = export.resolution
    if resolution == "raw":  # one pass over the items for every metric
        start, end = int(export.start_ms), int(export.end_ms)
        readings = query.raw_readings(export.device_id, start, end)
        rows_by_time = raw_rows(readings, metrics)
    else:
        streams = {m: _points(export.device_id, m, export) for m in metrics}
        rows_by_time = merge_rows(streams, 0)
    text = io.StringIO()
    writer = csv.writer(text)  # RFC 4180: CRLF line ends, quoting where needed
    writer.writerow(header(metrics, resolution))  # type: ignore[arg-type]
    rows = 0
    for ts, row in rows_by_time:
        rows += 1
        if rows > MAX_ROWS:
            raise ExportTooLarge(f"The export would pass {MAX_ROWS} rows.")
        writer.writerow([iso_ms(ts), *_cells(row, metrics, resolution)])
        if rows % 500 == 0 and remaining_ms() < RESERVE_MS:
            raise OutOfTime("time running out before the file was written")
        if text.tell() >= 64 * 1024:
            upload.write(text.getvalue().encode())
            text.seek(0)
            text.truncate()
    upload.write(text.getvalue().encode())
    upload.close()
    return Built(rows=rows, size=upload.size)


def build(export: ExportModel, remaining_ms: Callable[[], int]) -> None:
    """Claim the export and write its file; a final export is left alone."""
    now_ms = int(clock.now() * 1000)
    if export.status in ACTIVE and now_ms > int(export.deadline_ms):
        exports.fail(export, "The export did not finish in time.")
        return
    run_id = new_id()
    if not exports.claim(export, run_id, now_ms + remaining_ms() + LEASE_MARGIN_MS, now_ms):
        if export.status in ("ready", "failed"):
            logger.info("export already final", export_id=export.export_id, status=export.status)
            return
        raise Busy(f"Export {export.export_id} is being built by another invocation.")
    upload = _Upload(get_settings().data_bucket, export.object_key)
    try:
        built = write_csv(export, upload, remaining_ms)
    except ExportTooLarge as error:
        upload.abort()
        exports.fail(export, f"{error} Narrow the range, name fewer metrics or use a rollup.")
        return
    except BaseException:
        upload.abort()
        raise
    if exports.finish(export, run_id, built.rows, built.size):
        logger.info("export ready", export_id=export.export_id, rows=built.rows, bytes=built.size)
    else:
        logger.warning("export changed during the build; left as it is", export_id=export.export_id)


def build_message(record: dict[str, Any], remaining_ms: Callable[[], int]) -> None:
    """One queued export id. An unreadable message or an unknown export is dropped. Any other
    failure raises, for SQS to redeliver; on the last receive the export is marked failed
    with the reason first, and the message still goes to the dead-letter queue as the record
    (ADR 9)."""
    try:
        message = json.loads(record["body"])
        export = exports.find(str(message["device_id"]), str(message["export_id"]))
    except (KeyError, TypeError, ValueError, NotFound) as error:
        logger.warning(
            "export message dropped", message_id=record.get("messageId"), error=str(error)
        )
        return
    try:
        build(export, remaining_ms)
    except Exception as error:
        receives = int((record.get("attributes") or {}).get("ApproximateReceiveCount", 1))
        logger.warning("export not built", export_id=export.export_id, receives=receives)
        if receives >= MAX_RECEIVES and not isinstance(error, Busy):
            # The reason is for users: the details stay in the batch's log line.
            cause = (
                "the worker's time running out"
                if isinstance(error, OutOfTime)
                else "an internal error"
            )
            try:
                exports.fail(export, f"The export failed {receives} times, the last with {cause}.")
            except Exception:  # the message still fails alone, and dead-letters
                logger.exception("export not marked failed", export_id=export.export_id)
        raise


def build_batch(records: Iterable[dict[str, Any]], remaining_ms: Callable[[], int]) -> list[str]:
    """One SQS batch of export ids; answers the message ids to retry."""
    return batch.failed_message_ids(
        records, lambda record: build_message(record, remaining_ms), what="export"
    )
