"""CSV exports of a device's telemetry, the request side: POST and GET
/api/v1/devices/{device_id}/exports[/{id}], and the state changes the builder
(kumo.telemetry.csv_export, the worker of SQS kumo-<stage>-exports) makes. ADR 15.

    queued ──worker claims──▶ running ──file written──▶ ready
    queued | running ──refused, third failed attempt, or past its deadline──▶ failed

A request is checked and stored queued, holding one of its org's MAX_ACTIVE_PER_ORG slots,
and its id goes on the queue. The worker claims it with a conditional update (queued, or
running under a lapsed lease: a build that died), writes the file and marks it ready only
while it still holds the lease. A final state never changes, so a redelivered message for a
ready export does nothing. An unfinished export past its deadline reads as failed; whoever
sees it first writes that down and frees its slot (nothing sweeps). The file lives a week
(the bucket's lifecycle rule), like the record (the table's TTL).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import DoesNotExist, PynamoDBException, UpdateError

from kumo.core import abuse_limits as limits
from kumo.core import aws, clock, dynamo, rate_limit
from kumo.core.config import get_settings
from kumo.core.errors import Conflict, KumoError, NotFound, ServiceUnavailable, invalid
from kumo.core.ids import is_id, new_id
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor
from kumo.devices import service as devices
from kumo.telemetry import query
from kumo.telemetry.errors import ExportLimitReached, IdempotencyKeyReused
from kumo.telemetry.models import (
    EXPORT_PREFIX,
    EXPORT_SLOT_PREFIX,
    ExportModel,
    ExportRequestKeyModel,
    ExportSlotModel,
    RateCounterModel,
    export_partition,
    export_request_key,
    export_slot_key,
    export_slot_partition,
    export_sort_key,
    iso_ms,
)
from kumo.telemetry.schemas import MAX_EXPORT_METRICS, ExportOut, ExportRequest

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
LINK_SECONDS: Final = 15 * 60
KEEP_SECONDS: Final = 7 * 86_400
# Queue wait plus three attempts of at most the worker's timeout (300 s) and the queue's
# visibility timeout (900 s): an export unfinished after this has failed.
DEADLINE_SECONDS: Final = 3600
ACTIVE: Final = ("queued", "running")
_ROUNDS: Final = 3
_NO_EXPORT: Final = "No such export."
_CHANGED: Final = "The organization's exports changed meanwhile; try again."


@cache
def s3() -> Any:  # no S3 stubs in the project's pins
    import boto3  # only the export functions pay for the client
    from botocore.config import Config

    # SigV4 everywhere: the default for presigning differs between regions and versions.
    return boto3.client("s3", config=Config(signature_version="s3v4"))


def object_key(org_id: str, device_id: str, export_id: str) -> str:
    return f"exports/{org_id}/{device_id}/{export_id}.csv"


# --- requests -------------------------------------------------------------------------------


def _moment(value: int | str, field: str) -> int:
    return value if isinstance(value, int) else query.moment_ms(value, field)


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
    known = sorted(query.latest(device_id))
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
        used = ExportRequestKeyModel.get(
            export_partition(device_id), key_sort, consistent_read=True
        )
    except DoesNotExist:
        return None
    if used.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with another request body; use a new key."
        )
    try:
        return _observe(find(device_id, used.export_id), now_ms)
    except NotFound:
        return None  # expired with its export: the key is free again


def request_export(
    *, user_id: str, device_id: str, request: ExportRequest, idempotency_key: str | None
) -> tuple[ExportModel, bool]:
    """Store the export queued and queue its id; answers it and whether it was a replay.
    Within the user's export allowance (ADR 24), which a replay or a refusal does not use."""
    device = devices.get_device_for(user_id, device_id, "member")
    start_ms, end_ms = _range(request)
    metrics = _metrics(request, device_id)
    spent = rate_limit.spend(RateCounterModel, limits.EXPORT_PER_USER, user_id)
    try:
        export, replayed = _queue_export(
            user_id,
            (device.org_id, device_id),
            request,
            idempotency_key,
            (start_ms, end_ms),
            metrics,
        )
    except KumoError:
        spent.refund()
        raise
    if replayed:
        spent.refund()
    return export, replayed


def _queue_export(
    user_id: str,
    org_and_device: tuple[str, str],
    request: ExportRequest,
    idempotency_key: str | None,
    span: tuple[int, int],
    metrics: list[str],
) -> tuple[ExportModel, bool]:
    org_id, device_id = org_and_device
    start_ms, end_ms = span
    fingerprint = _fingerprint(request)
    key_sort = _request_key(user_id, idempotency_key) if idempotency_key else None
    for _ in range(_ROUNDS):
        now_ms = int(clock.now() * 1000)
        if key_sort is not None:
            earlier = _replay(device_id, key_sort, fingerprint, now_ms)
            if earlier is not None:
                return earlier, True
        slot, holder = _free_slot(org_id, now_ms)
        export_id = new_id()
        export = ExportModel(
            pk=export_partition(device_id),
            sk=export_sort_key(export_id),
            export_id=export_id,
            org_id=org_id,
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
            object_key=object_key(org_id, device_id, export_id),
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
            export_slot_partition(org_id),
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
        pk=export_slot_partition(export.org_id),
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
        fail(export, "The export could not be queued.")
        raise ServiceUnavailable("The export could not be queued; try again.") from error


# --- reading --------------------------------------------------------------------------------


def find(device_id: str, export_id: str) -> ExportModel:
    if not is_id(export_id):
        raise NotFound(_NO_EXPORT)
    export = dynamo.get_or_none(
        ExportModel, export_partition(device_id), export_sort_key(export_id), consistent_read=True
    )
    if export is None:
        raise NotFound(_NO_EXPORT)
    if int(export.expires_at) * 1000 <= int(clock.now() * 1000):
        raise NotFound(_NO_EXPORT)  # past its week; the TTL has not removed it yet
    return export


def _observe(export: ExportModel, now_ms: int) -> ExportModel:
    """The export as it stands at `now_ms`: an unfinished one past its deadline has failed."""
    if export.status in ACTIVE and now_ms > int(export.deadline_ms):
        fail(export, "The export did not finish in time.")
    return export


def get_export(*, user_id: str, device_id: str, export_id: str) -> ExportModel:
    devices.get_device_for(user_id, device_id, "viewer")
    return _observe(find(device_id, export_id), int(clock.now() * 1000))


def list_exports(
    *, user_id: str, device_id: str, limit: int | None, cursor: str | None
) -> tuple[list[ExportModel], str | None]:
    """A device's exports, newest first."""
    devices.get_device_for(user_id, device_id, "viewer")
    partition = export_partition(device_id)
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
    url = s3().generate_presigned_url(
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
    slot = ExportSlotModel(export_slot_partition(export.org_id), export_slot_key(int(export.slot)))
    try:
        slot.delete(condition=ExportSlotModel.export_id == export.export_id)
    except PynamoDBException as error:
        if not dynamo.condition_failed(error):
            raise


def fail(export: ExportModel, reason: str) -> None:
    """Unfinished → failed with `reason`; one that finished meanwhile is left as it is."""
    failed = dynamo.conditional_update(
        export,
        actions=[
            ExportModel.status.set("failed"),
            ExportModel.error.set(reason),
            ExportModel.finished_at.set(clock.utc_iso()),
            ExportModel.lease_until_ms.remove(),
        ],
        condition=ExportModel.status.is_in(*ACTIVE),
    )
    if not failed:
        return
    logger.info("export failed", export_id=export.export_id, reason=reason)
    _release(export)


def claim(export: ExportModel, run_id: str, lease_until_ms: int, now_ms: int) -> bool:
    """queued, or running under a lapsed lease (its build died) → running under this run."""
    return dynamo.conditional_update(
        export,
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


def finish(export: ExportModel, run_id: str, rows: int, size: int) -> bool:
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
