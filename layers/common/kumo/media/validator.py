"""The validator, the worker of SQS kumo-<stage>-media-uploads: S3 tells it of every object
created under quarantine/, and it judges the bytes (docs/adr/0028).

    pending ──bytes fit the purpose, decoded, re-encoded──▶ ready    (objects under media/)
    pending ──anything else──────────────────────────────▶ rejected (with the reason)

Either way the quarantine object is deleted. What a file is comes from its bytes
(kumo.media.sniff), never from its name or declared type, so a file is stored and served as
what it is. Pictures are decoded in full and re-encoded without metadata (kumo.media.images);
PDFs are checked and kept as they came (kumo.media.documents). Becoming ready is one
transaction: the record leaves `pending`, the org's usage grows on the condition that it stays
within the quota, and the pending upload stops counting. A redelivered event finds the record
judged and only deletes what is left in quarantine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from kumo.core import clock, dynamo, events
from kumo.core.config import get_settings
from kumo.core.errors import Conflict, KumoError
from kumo.media import documents, images
from kumo.media.models import (
    MediaModel,
    PendingUploadModel,
    UsageModel,
    file_prefix,
    org_key,
    original_key,
    pending_sort_key,
    thumbnail_key,
)
from kumo.media.purposes import RULES
from kumo.media.sniff import CONTENT_TYPES, IMAGES, sniff
from kumo.media.storage import find, s3, stored_bytes

logger = Logger(child=True)

REJECTED_KEEP_SECONDS: Final = 7 * 86_400
_UNKNOWN: Final = (
    "the file is not a PNG, JPEG, GIF, WebP or PDF (judged from its bytes; SVG, HTML and "
    "other kinds are never kept)"
)


@dataclass(frozen=True, slots=True)
class Kept:
    """What is stored for a file judged fit."""

    data: bytes
    kind: str
    width: int | None = None
    height: int | None = None
    thumbnails: dict[int, bytes] = field(default_factory=dict)


class _Judged(KumoError):
    """The record left `pending` meanwhile: another delivery judged it."""


class _OverQuota(KumoError):
    """The file does not fit in what the org may store."""


def handle(record: dict[str, Any]) -> None:
    """One SQS message: S3's event, or its test event when the bucket's notifications were
    set (nothing to do). A body that is not S3's is logged and dropped: retrying it would not
    change it."""
    try:
        body = json.loads(record.get("body", ""))
        entries = body.get("Records", []) if isinstance(body, dict) else None
    except json.JSONDecodeError:
        entries = None
    if entries is None:
        logger.error("not an S3 event; dropped", message_id=record.get("messageId"))
        return
    for entry in entries:
        s3_object = entry.get("s3", {}).get("object", {})
        # S3 writes the key as a form would (spaces as '+').
        judge_object(unquote_plus(str(s3_object.get("key", ""))))


def _parts(key: str) -> tuple[str, str] | None:
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "quarantine" and all(parts[1:]):
        return parts[1], parts[2]
    return None


def _drop_quarantined(key: str) -> None:
    s3().delete_object(Bucket=get_settings().media_bucket, Key=key)


def judge_object(key: str) -> None:
    parts = _parts(key)
    if parts is None:
        logger.error("object outside the upload keys; left alone", key=key)
        return
    org_id, media_id = parts
    media = find(media_id)
    if media is None or media.org_id != org_id or media.state != "pending":
        # Deleted, expired or judged already (a second upload with the same form, or a
        # redelivery): nothing of it is ever read.
        _drop_quarantined(key)
        logger.info("upload without a pending record; removed", media_id=media_id)
        return
    try:
        data = s3().get_object(Bucket=get_settings().media_bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return  # removed by an earlier delivery
        raise
    verdict = judge(media, data)
    if isinstance(verdict, str):
        _reject(media, verdict)
    else:
        _keep(media, verdict)
    _drop_quarantined(key)


def judge(media: MediaModel, data: bytes) -> Kept | str:
    """What to store for these bytes as this file's purpose, or why they are refused."""
    purpose = media.purpose
    rules = RULES[purpose]  # type: ignore[index]
    if not data:
        return "the file is empty"
    if len(data) > rules.max_bytes:
        return f"the file is {len(data):,} bytes; a {purpose} is at most {rules.max_bytes:,}"
    kind = sniff(data[:16])
    if kind is None:
        return _UNKNOWN
    if kind not in rules.kinds:
        allowed = ", ".join(sorted(k.upper() for k in rules.kinds))
        return f"the file is a {kind.upper()}; a {purpose} is one of: {allowed}"
    if kind in IMAGES:
        try:
            picture = images.clean(data, kind)
        except images.NotAPicture as error:
            return str(error)
        return Kept(picture.data, kind, picture.width, picture.height, picture.thumbnails)
    try:
        documents.check_pdf(data)
    except documents.NotADocument as error:
        return str(error)
    return Kept(data, kind)


def _put(key: str, data: bytes, content_type: str) -> None:
    s3().put_object(
        Bucket=get_settings().media_bucket, Key=key, Body=data, ContentType=content_type
    )


def _keep(media: MediaModel, kept: Kept) -> None:
    org_id, media_id = media.org_id, media.media_id
    content_type = CONTENT_TYPES[kept.kind]  # type: ignore[index]
    digest = hashlib.sha256(kept.data).hexdigest()
    # The judged bytes are written, not copied from quarantine (a second upload with the same
    # form cannot slip unjudged bytes in between), under a prefix named after them: bytes of
    # another upload never overwrite a kept file's, and a retry of these writes the same keys.
    prefix = file_prefix(org_id, media_id, digest[:16])
    _put(original_key(prefix), kept.data, content_type)
    for size, thumbnail in kept.thumbnails.items():
        _put(thumbnail_key(prefix, size), thumbnail, "image/webp")
    stored = len(kept.data) + sum(len(t) for t in kept.thumbnails.values())
    objects = 1 + len(kept.thumbnails)
    try:
        _make_ready(media, kept, prefix, (stored, objects))
    except _Judged:
        # Judged by another delivery: these objects go unless the record names them (the
        # same bytes judged twice, or this very commit whose answer was lost).
        if not _discard_unless_kept(media_id, prefix, kept):
            return
    except _OverQuota:
        quota = get_settings().media_bytes_per_org
        _reject(media, f"the organization's storage ({quota:,} bytes) is full")
        _discard_unless_kept(media_id, prefix, kept)
        return
    # Any other failure (a concurrent write to the usage item, the network) leaves the objects
    # for the redelivery, which writes the same keys.
    events.publish(
        source="kumo.media",
        detail_type="media.ready",
        detail={"media_id": media_id, "org_id": org_id, "purpose": media.purpose},
    )
    logger.info("file ready", media_id=media_id, kind=kept.kind, bytes=stored)


def _discard_unless_kept(media_id: str, prefix: str, kept: Kept) -> bool:
    """Remove this judgement's objects once the record is final and names other objects (or
    is gone); True when they are the record's and stay. A pending record may still commit
    them, so they stay while it is pending too (the redelivery decides)."""
    current = find(media_id)
    if current is not None and (current.state == "pending" or current.object_prefix == prefix):
        return True
    _remove_kept(prefix, kept)
    return False


def _make_ready(media: MediaModel, kept: Kept, prefix: str, size: tuple[int, int]) -> None:
    stored, objects = size
    quota = get_settings().media_bytes_per_org
    if stored > quota:
        raise _OverQuota("larger than the quota")

    def explain() -> KumoError | None:
        current = find(media.media_id)
        if current is None or current.state != "pending":
            return _Judged("judged meanwhile")
        used, _ = stored_bytes(media.org_id)
        if used + stored > quota:
            return _OverQuota("over the quota")
        return None  # a concurrent write: a Conflict, which SQS retries

    with dynamo.transaction(explain, changed="usage changed") as write:
        write.update(
            media,
            actions=[
                MediaModel.state.set("ready"),
                MediaModel.kind.set(kept.kind),
                MediaModel.content_type.set(CONTENT_TYPES[kept.kind]),  # type: ignore[index]
                MediaModel.size.set(len(kept.data)),
                *_dimensions(kept),
                MediaModel.sha256.set(hashlib.sha256(kept.data).hexdigest()),
                *_thumbnail_sizes(kept),
                MediaModel.object_prefix.set(prefix),
                MediaModel.stored_bytes.set(stored),
                MediaModel.stored_objects.set(objects),
                MediaModel.judged_at.set(clock.utc_iso()),
                MediaModel.expires_at.remove(),
            ],
            condition=MediaModel.state == "pending",
        )
        write.update(
            UsageModel(org_key(media.org_id)),
            actions=[
                UsageModel.org_id.set(media.org_id),
                UsageModel.bytes.add(stored),
                UsageModel.objects.add(objects),
            ],
            condition=UsageModel.bytes.does_not_exist() | (UsageModel.bytes <= quota - stored),
        )
        write.delete(PendingUploadModel(org_key(media.org_id), pending_sort_key(media.media_id)))


def _thumbnail_sizes(kept: Kept) -> list[Any]:
    # DynamoDB stores no empty set.
    sizes = {float(size) for size in kept.thumbnails}
    return [MediaModel.thumbnail_sizes.set(sizes)] if sizes else []


def _dimensions(kept: Kept) -> list[Any]:
    if kept.width is None or kept.height is None:
        return []  # a document
    return [MediaModel.width.set(kept.width), MediaModel.height.set(kept.height)]


def _remove_kept(prefix: str, kept: Kept) -> None:
    keys = [original_key(prefix)] + [thumbnail_key(prefix, size) for size in kept.thumbnails]
    s3().delete_objects(
        Bucket=get_settings().media_bucket,
        Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
    )


def _reject(media: MediaModel, reason: str) -> None:
    now = clock.now()
    try:
        with dynamo.transaction(lambda: None, changed="judged meanwhile") as write:
            write.update(
                media,
                actions=[
                    MediaModel.state.set("rejected"),
                    MediaModel.reason.set(reason[:1].upper() + reason[1:] + "."),
                    MediaModel.judged_at.set(clock.utc_iso(now)),
                    MediaModel.expires_at.set(int(now) + REJECTED_KEEP_SECONDS),
                ],
                condition=MediaModel.state == "pending",
            )
            write.delete(
                PendingUploadModel(org_key(media.org_id), pending_sort_key(media.media_id))
            )
    except Conflict:
        current = find(media.media_id)
        if current is not None and current.state == "pending":
            raise  # a concurrent write, not a judgement: SQS delivers the event again
        return  # another delivery judged it first
    events.publish(
        source="kumo.media",
        detail_type="media.rejected",
        detail={"media_id": media.media_id, "org_id": media.org_id, "reason": reason},
    )
    logger.info("file rejected", media_id=media.media_id, reason=reason)
