"""CSV exports of a device's telemetry: POST and GET /api/v1/devices/{device_id}/exports[/{id}]
and the worker of SQS kumo-<stage>-exports (functions/devices/build_export). ADR 15.

    queued ──worker claims──▶ running ──file written──▶ ready
    queued | running ──refused, third failed attempt, or past its deadline──▶ failed

A request is checked and stored queued, holding one of its org's MAX_ACTIVE_PER_ORG slots,
and its id goes on the queue. The worker claims it with a conditional update (queued, or
running under a lapsed lease: a build that died), reads every page of every metric through
the readings route's read path, writes CSV to s3://DATA_BUCKET/exports/<org>/<device>/<id>.csv
(one PutObject, or a multipart upload past PART_BYTES) and marks it ready only while it
still holds the lease. A final state never changes, so a redelivered message for a ready
export does nothing. An unfinished export past its deadline reads as failed; whoever sees it
first writes that down and frees its slot (nothing sweeps). The file lives a week (the
bucket's lifecycle rule), like the record (the table's TTL).

CSV: `timestamp,<metric>,...` (raw) or `timestamp,<metric>_count,_sum,_min,_max,_avg,...`
(rollups), one row per timestamp (ISO 8601 UTC, milliseconds, oldest first), an empty cell
where a metric has no value at that time; CRLF line ends (RFC 4180).
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import DoesNotExist, PynamoDBException, UpdateError

from kumo.core import aws, clock, dynamo
from kumo.core.config import get_settings
from kumo.core.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed, invalid
from kumo.core.ids import is_id, new_id
from kumo.core.pagination import MAX_LIMIT, clamp_limit, decode_cursor, encode_cursor
from kumo.devices import service, telemetry
from kumo.devices.models import (
    EXPORT_PREFIX,
    EXPORT_SLOT_PREFIX,
    ExportModel,
    ExportRequestKeyModel,
    ExportSlotModel,
    device_key,
    export_request_key,
    export_slot_key,
    export_sort_key,
    org_key,
)
from kumo.devices.readings import moment_ms
from kumo.devices.schemas import MAX_EXPORT_METRICS, ExportOut, ExportRequest, Resolution
from kumo.devices.telemetry_models import iso_ms

logger = Logger(child=True)

DAY_MS: Final = 86_400_000
# Longest range per request: a raw export reads every packed item in it once per metric.
MAX_SPAN_MS: Final[dict[str, int]] = {
    "raw": 31 * DAY_MS,
    "1m": 92 * DAY_MS,
    "1h": 731 * DAY_MS,
    "1d": 731 * DAY_MS,
}
MAX_ACTIVE_PER_ORG: Final = 5
# Hard caps on one file: past either the export fails as too large (never truncated).
MAX_ROWS: Final = 200_000
MAX_BYTES: Final = 64 * 1024 * 1024
# Parts of a multipart upload (S3 wants at least 5 MiB for all but the last); what is held in
# memory besides the rows waiting to be ordered.
PART_BYTES: Final = 8 * 1024 * 1024
LINK_SECONDS: Final = 15 * 60
KEEP_SECONDS: Final = 7 * 86_400
# Queue wait plus three attempts of at most the worker's timeout (300 s) and the queue's
# visibility timeout (900 s): an export unfinished after this has failed.
DEADLINE_SECONDS: Final = 3600
# A claim's lease outlives the invocation that made it by this margin.
LEASE_MARGIN_MS: Final = 60_000
# The build stops while this much of the invocation is left, to record and release.
RESERVE_MS: Final = 20_000
MAX_RECEIVES: Final = 3  # the queue's maxReceiveCount
ACTIVE: Final = ("queued", "running")
_ROUNDS: Final = 3
_NO_EXPORT: Final = "No such export."
_CHANGED: Final = "The organization's exports changed meanwhile; try again."


class ExportLimitReached(Conflict):
    slug, title = "export-limit-reached", "Export limit reached"


class IdempotencyKeyReused(ValidationFailed):
    slug, title = "idempotency-key-reused", "Idempotency key reused"


class ExportTooLarge(Exception):
    """The file would pass a cap; trying again would not change that."""


class OutOfTime(Exception):
    """The invocation is about to end; the message comes back and the build starts over."""


class Busy(Exception):
    """Another build holds the export's lease; the message comes back after it."""


@cache
def _s3() -> Any:  # no S3 stubs in the project's pins
    import boto3  # only the export functions pay for the client
    from botocore.config import Config

    # SigV4 everywhere: the default for presigning differs between regions and versions.
    return boto3.client("s3", config=Config(signature_version="s3v4"))


def object_key(org_id: str, device_id: str, export_id: str) -> str:
    return f"exports/{org_id}/{device_id}/{export_id}.csv"


# --- requests -------------------------------------------------------------------------------


def _moment(value: int | str, field: str) -> int:
    return value if isinstance(value, int) else moment_ms(value, field)


def _range(request: ExportRequest) -> tuple[int, int]:
    start_ms, end_ms = _moment(request.start, "from"), _moment(request.end, "to")
    if start_ms >= end_ms:
        raise invalid("from", "'from' must be before 'to'.")
    span = MAX_SPAN_MS[request.resolution]
    if end_ms - start_ms > span:
        days = span // DAY_MS
        message = f"A {request.resolution} export covers at most {days} days; narrow the range."
        raise invalid("to", message)
    return start_ms, end_ms


def _metrics(request: ExportRequest, device_id: str) -> list[str]:
    if request.metrics is not None:
        if len(set(request.metrics)) != len(request.metrics):
            raise invalid("metrics", "Name each metric once.")
        return list(request.metrics)
    # Every metric the device has sent keeps a latest value: that is the full column list.
    known = sorted(telemetry.latest(device_id))
    if len(known) > MAX_EXPORT_METRICS:
        message = f"The device has sent {len(known)} metrics; name at most {MAX_EXPORT_METRICS}."
        raise invalid("metrics", message)
    return known


def _fingerprint(request: ExportRequest) -> str:
    body = request.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _request_key(user_id: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(f"{user_id}\n{idempotency_key}".encode()).hexdigest()
    return export_request_key(digest)


def _replay(device_id: str, key_sort: str, fingerprint: str, now_ms: int) -> ExportModel | None:
    """The export an earlier request with this Idempotency-Key made, if there was one."""
    try:
        used = ExportRequestKeyModel.get(device_key(device_id), key_sort, consistent_read=True)
    except DoesNotExist:
        return None
    if used.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with another request body; use a new key."
        )
    try:
        return _observe(_find(device_id, used.export_id), now_ms)
    except NotFound:
        return None  # expired with its export: the key is free again


def request_export(
    *, user_id: str, device_id: str, request: ExportRequest, idempotency_key: str | None
) -> tuple[ExportModel, bool]:
    """Store the export queued and queue its id; answers it and whether it was a replay."""
    device = service.get_device_for(user_id, device_id, "member")
    start_ms, end_ms = _range(request)
    metrics = _metrics(request, device_id)
    fingerprint = _fingerprint(request)
    key_sort = _request_key(user_id, idempotency_key) if idempotency_key else None
    for _ in range(_ROUNDS):
        now_ms = int(clock.now() * 1000)
        if key_sort is not None:
            earlier = _replay(device_id, key_sort, fingerprint, now_ms)
            if earlier is not None:
                return earlier, True
        slot, holder = _free_slot(device.org_id, now_ms)
        export_id = new_id()
        export = ExportModel(
            pk=device_key(device_id),
            sk=export_sort_key(export_id),
            export_id=export_id,
            org_id=device.org_id,
            device_id=device_id,
            start_ms=start_ms,
            end_ms=end_ms,
            resolution=request.resolution,
            metrics_json=json.dumps(metrics),
            status="queued",
            created_by=user_id,
            created_at=clock.utc_iso(now_ms / 1000),
            deadline_ms=now_ms + DEADLINE_SECONDS * 1000,
            slot=slot,
            object_key=object_key(device.org_id, device_id, export_id),
            expires_at=now_ms // 1000 + KEEP_SECONDS,
        )
        try:
            _create(export, holder, key_sort, fingerprint, now_ms)
        except Conflict:
            continue  # a slot or the key was taken meanwhile: look again
        _enqueue(export)
        logger.info("export queued", export_id=export_id, device_id=device_id)
        return export, False
    raise Conflict(_CHANGED)


def _free_slot(org_id: str, now_ms: int) -> tuple[int, ExportSlotModel | None]:
    """A slot nobody holds, or one held past its export's deadline (and its holder)."""
    held = {
        int(slot.sk.removeprefix(EXPORT_SLOT_PREFIX)): slot
        for slot in ExportSlotModel.query(
            org_key(org_id),
            ExportSlotModel.sk.startswith(EXPORT_SLOT_PREFIX),
            consistent_read=True,
        )
    }
    for number in range(MAX_ACTIVE_PER_ORG):
        holder = held.get(number)
        if holder is None or int(holder.deadline_ms) < now_ms:
            return number, holder
    raise ExportLimitReached(
        f"This organization has {MAX_ACTIVE_PER_ORG} exports queued or running; "
        "wait for one to finish.",
        limit=MAX_ACTIVE_PER_ORG,
    )


def _create(
    export: ExportModel,
    holder: ExportSlotModel | None,
    key_sort: str | None,
    fingerprint: str,
    now_ms: int,
) -> None:
    """The export, its slot and its request key in one transaction, or nothing."""
    slot = ExportSlotModel(
        pk=org_key(export.org_id),
        sk=export_slot_key(int(export.slot)),
        export_id=export.export_id,
        device_id=export.device_id,
        deadline_ms=export.deadline_ms,
        expires_at=int(export.deadline_ms) // 1000 + 86_400,
    )
    taken = (
        ExportSlotModel.pk.does_not_exist()
        if holder is None
        else (ExportSlotModel.export_id == holder.export_id)
        & (ExportSlotModel.deadline_ms < now_ms)
    )
    with dynamo.transaction(lambda: None, changed=_CHANGED) as transaction:
        transaction.save(export, condition=ExportModel.pk.does_not_exist())
        transaction.save(slot, condition=taken)
        if key_sort is not None:
            used = ExportRequestKeyModel(
                pk=export.pk,
                sk=key_sort,
                export_id=export.export_id,
                fingerprint=fingerprint,
                expires_at=export.expires_at,
            )
            transaction.save(used, condition=ExportRequestKeyModel.pk.does_not_exist())


def _enqueue(export: ExportModel) -> None:
    body = json.dumps({"export_id": export.export_id, "device_id": export.device_id})
    try:
        aws.sqs().send_message(QueueUrl=get_settings().export_queue_url, MessageBody=body)
    except (BotoCoreError, ClientError) as error:
        logger.error("export not queued", export_id=export.export_id, error=str(error))
        _fail(export, "The export could not be queued.")
        raise ServiceUnavailable("The export could not be queued; try again.") from error


# --- reading --------------------------------------------------------------------------------


def _find(device_id: str, export_id: str) -> ExportModel:
    if not is_id(export_id):
        raise NotFound(_NO_EXPORT)
    try:
        export = ExportModel.get(
            device_key(device_id), export_sort_key(export_id), consistent_read=True
        )
    except DoesNotExist as error:
        raise NotFound(_NO_EXPORT) from error
    if int(export.expires_at) * 1000 <= int(clock.now() * 1000):
        raise NotFound(_NO_EXPORT)  # past its week; the TTL has not removed it yet
    return export


def _observe(export: ExportModel, now_ms: int) -> ExportModel:
    """The export as it stands at `now_ms`: an unfinished one past its deadline has failed."""
    if export.status in ACTIVE and now_ms > int(export.deadline_ms):
        _fail(export, "The export did not finish in time.")
    return export


def get_export(*, user_id: str, device_id: str, export_id: str) -> ExportModel:
    service.get_device_for(user_id, device_id, "viewer")
    return _observe(_find(device_id, export_id), int(clock.now() * 1000))


def list_exports(
    *, user_id: str, device_id: str, limit: int | None, cursor: str | None
) -> tuple[list[ExportModel], str | None]:
    """A device's exports, newest first."""
    service.get_device_for(user_id, device_id, "viewer")
    partition = device_key(device_id)
    now_ms = int(clock.now() * 1000)
    results = ExportModel.query(
        partition,
        ExportModel.sk.startswith(EXPORT_PREFIX),
        filter_condition=ExportModel.expires_at > now_ms // 1000,
        scan_index_forward=False,
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(cursor, partition=("pk", partition)),
    )
    exports = [_observe(export, now_ms) for export in results]
    return exports, encode_cursor(results.last_evaluated_key)


def _filename(export: ExportModel) -> str:
    def stamp(epoch_ms: int) -> str:
        return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")

    start, end = stamp(int(export.start_ms)), stamp(int(export.end_ms))
    return f"{export.device_id}_{export.resolution}_{start}_{end}.csv"


def download_link(export: ExportModel) -> tuple[str, str]:
    """A pre-signed GET of the file that saves it under a readable name, and its expiry."""
    url = _s3().generate_presigned_url(
        "get_object",
        Params={
            "Bucket": get_settings().data_bucket,
            "Key": export.object_key,
            "ResponseContentDisposition": f'attachment; filename="{_filename(export)}"',
            "ResponseContentType": "text/csv",
        },
        ExpiresIn=LINK_SECONDS,
    )
    return url, clock.utc_iso(clock.now() + LINK_SECONDS)


def export_out(export: ExportModel) -> ExportOut:
    url, until = download_link(export) if export.status == "ready" else (None, None)
    return ExportOut(
        id=export.export_id,
        org_id=export.org_id,
        device_id=export.device_id,
        status=export.status,  # type: ignore[arg-type]
        start=iso_ms(int(export.start_ms)),
        end=iso_ms(int(export.end_ms)),
        resolution=export.resolution,  # type: ignore[arg-type]
        metrics=json.loads(export.metrics_json),
        created_by=export.created_by,
        created_at=export.created_at,
        started_at=export.started_at,
        finished_at=export.finished_at,
        row_count=int(export.row_count) if export.row_count is not None else None,
        byte_size=int(export.byte_size) if export.byte_size is not None else None,
        error=export.error,
        available_until=clock.utc_iso(int(export.expires_at)),
        download_url=url,
        expires_at=until,
    )


# --- state changes --------------------------------------------------------------------------


def _release(export: ExportModel) -> None:
    """Free the export's org slot, unless another export took it over already."""
    slot = ExportSlotModel(org_key(export.org_id), export_slot_key(int(export.slot)))
    try:
        slot.delete(condition=ExportSlotModel.export_id == export.export_id)
    except PynamoDBException as error:
        if not dynamo.condition_failed(error):
            raise


def _fail(export: ExportModel, reason: str) -> None:
    """Unfinished → failed with `reason`; one that finished meanwhile is left as it is."""
    try:
        export.update(
            actions=[
                ExportModel.status.set("failed"),
                ExportModel.error.set(reason),
                ExportModel.finished_at.set(clock.utc_iso()),
                ExportModel.lease_until_ms.remove(),
            ],
            condition=ExportModel.status.is_in(*ACTIVE),
        )
    except UpdateError as error:
        if not dynamo.condition_failed(error):
            raise
        export.refresh(consistent_read=True)
        return
    logger.info("export failed", export_id=export.export_id, reason=reason)
    _release(export)


def _claim(export: ExportModel, run_id: str, lease_until_ms: int, now_ms: int) -> bool:
    """queued, or running under a lapsed lease (its build died) → running under this run."""
    try:
        export.update(
            actions=[
                ExportModel.status.set("running"),
                ExportModel.run_id.set(run_id),
                ExportModel.lease_until_ms.set(lease_until_ms),
                ExportModel.attempts.add(1),
                ExportModel.started_at.set(clock.utc_iso(now_ms / 1000)),
            ],
            condition=(
                (ExportModel.status == "queued")
                | ((ExportModel.status == "running") & (ExportModel.lease_until_ms < now_ms))
            )
            & (ExportModel.deadline_ms >= now_ms),
        )
    except UpdateError as error:
        if not dynamo.condition_failed(error):
            raise
        export.refresh(consistent_read=True)
        return False
    return True


def _finish(export: ExportModel, run_id: str, rows: int, size: int) -> bool:
    try:
        export.update(
            actions=[
                ExportModel.status.set("ready"),
                ExportModel.row_count.set(rows),
                ExportModel.byte_size.set(size),
                ExportModel.finished_at.set(clock.utc_iso()),
                ExportModel.lease_until_ms.remove(),
            ],
            condition=(ExportModel.status == "running") & (ExportModel.run_id == run_id),
        )
    except UpdateError as error:
        if not dynamo.condition_failed(error):
            raise
        return False
    _release(export)
    return True


# --- building -------------------------------------------------------------------------------


def _points(device_id: str, metric: str, export: ExportModel) -> Iterator[tuple[int, Any]]:
    """Every point of one metric, as the readings route pages them: (epoch ms, point)."""
    cursor: str | None = None
    while True:
        points, cursor = telemetry.query_readings(
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
        while waiting and waiting[0] < ts - telemetry.RAW_SPAN_MS:
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
            created = _s3().create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType="text/csv"
            )
            self.upload_id = created["UploadId"]
        number = len(self.parts) + 1
        sent = _s3().upload_part(
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
            _s3().put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=self.buffer.getvalue(),
                ContentType="text/csv",
            )
            return
        if self.buffer.tell():
            self._send_part()
        _s3().complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    def abort(self) -> None:
        if self.upload_id is not None:
            try:
                _s3().abort_multipart_upload(
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
        readings = telemetry.raw_readings(export.device_id, start, end)
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
        _fail(export, "The export did not finish in time.")
        return
    run_id = new_id()
    if not _claim(export, run_id, now_ms + remaining_ms() + LEASE_MARGIN_MS, now_ms):
        if export.status in ("ready", "failed"):
            logger.info("export already final", export_id=export.export_id, status=export.status)
            return
        raise Busy(f"Export {export.export_id} is being built by another invocation.")
    upload = _Upload(get_settings().data_bucket, export.object_key)
    try:
        built = write_csv(export, upload, remaining_ms)
    except ExportTooLarge as error:
        upload.abort()
        _fail(export, f"{error} Narrow the range, name fewer metrics or use a rollup.")
        return
    except BaseException:
        upload.abort()
        raise
    if _finish(export, run_id, built.rows, built.size):
        logger.info("export ready", export_id=export.export_id, rows=built.rows, bytes=built.size)
    else:
        logger.warning("export changed during the build; left as it is", export_id=export.export_id)


def build_batch(records: Iterable[dict[str, Any]], remaining_ms: Callable[[], int]) -> list[str]:
    """One SQS batch of export ids; answers the message ids to retry.

    An unreadable message or an unknown export is dropped. Any other failure comes back for
    SQS to redeliver; on the last receive the export is marked failed with the reason first,
    and the message still goes to the dead-letter queue as the record (ADR 9)."""
    failed: list[str] = []
    for record in records:
        message_id = str(record.get("messageId", ""))
        try:
            message = json.loads(record["body"])
            export = _find(str(message["device_id"]), str(message["export_id"]))
        except (KeyError, TypeError, ValueError, NotFound) as error:
            logger.warning("export message dropped", message_id=message_id, error=str(error))
            continue
        try:
            build(export, remaining_ms)
        except Exception as error:
            receives = int((record.get("attributes") or {}).get("ApproximateReceiveCount", 1))
            logger.exception("export not built", export_id=export.export_id, receives=receives)
            if receives >= MAX_RECEIVES and not isinstance(error, Busy):
                # The reason is for users: the details stay in the log above.
                cause = (
                    "the worker's time running out"
                    if isinstance(error, OutOfTime)
                    else "an internal error"
                )
                try:
                    _fail(export, f"The export failed {receives} times, the last with {cause}.")
                except Exception:  # the message still fails alone, and dead-letters
                    logger.exception("export not marked failed", export_id=export.export_id)
            failed.append(message_id)
    return failed
