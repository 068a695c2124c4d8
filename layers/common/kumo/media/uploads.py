"""POST /api/v1/media/uploads: the form a client uploads a file with, straight to S3 (ADR 28).

The request is judged on what the client declares (purpose, type, size) and on the org's room
for it; the bytes are judged later, by the validator, on the S3 event. Room is the quota less
what the org stores and what its live pending uploads may still add: a soft check, as two
requests may both see the same room. The hard one is the validator's, whose transaction makes
a file ready only on the condition that the stored bytes stay within the quota.
"""

from __future__ import annotations

from typing import Final

from aws_lambda_powertools import Logger

from kumo.core import abuse_limits as limits
from kumo.core import clock, dynamo, rate_limit
from kumo.core.config import get_settings
from kumo.core.errors import KumoError, invalid
from kumo.core.ids import new_id
from kumo.media.errors import StorageQuotaReached, TooManyPendingUploads
from kumo.media.models import (
    PENDING_PREFIX,
    MediaModel,
    PendingUploadModel,
    RateCounterModel,
    media_key,
    org_key,
    org_purpose_key,
    pending_sort_key,
    quarantine_key,
)
from kumo.media.purposes import RULES
from kumo.media.schemas import CreateUploadRequest, UploadForm
from kumo.media.storage import s3, stored_bytes
from kumo.orgs.schemas import OrgRole
from kumo.orgs.service import require_org_role

logger = Logger(child=True)

FORM_SECONDS: Final = 15 * 60
# After its form expires, a pending upload still counts against the quota this long (an
# upload made just in time waits in the queue), and its record lives this long again.
JUDGING_SLACK_SECONDS: Final = 5 * 60
PENDING_KEEP_SECONDS: Final = 3600
MAX_PENDING_PER_ORG: Final = 100
_CHANGED: Final = "The organization's uploads changed meanwhile; try again."


def _role_for(request: CreateUploadRequest) -> OrgRole:
    # Anyone in the org may have a face; adding content to it takes a member.
    return "viewer" if request.purpose == "avatar" else "member"


def _check_declared(request: CreateUploadRequest) -> None:
    rules = RULES[request.purpose]
    if request.content_type.lower() not in rules.content_types:
        allowed = ", ".join(sorted(rules.content_types))
        raise invalid("content_type", f"A {request.purpose} is one of: {allowed}.")
    if request.size > rules.max_bytes:
        raise invalid(
            "size", f"A {request.purpose} is at most {rules.max_bytes:,} bytes; this is larger."
        )


def _pending(org_id: str, now: float) -> list[PendingUploadModel]:
    return [
        pending
        for pending in PendingUploadModel.query(
            org_key(org_id),
            PendingUploadModel.sk.startswith(PENDING_PREFIX),
            consistent_read=True,
        )
        if int(pending.upload_deadline) + JUDGING_SLACK_SECONDS > now
    ]


def _check_room(org_id: str, size: int, now: float) -> None:
    pending = _pending(org_id, now)
    if len(pending) >= MAX_PENDING_PER_ORG:
        raise TooManyPendingUploads(
            f"This organization has {MAX_PENDING_PER_ORG} uploads in progress; finish them "
            f"or wait {FORM_SECONDS // 60} minutes for their forms to expire.",
            limit=MAX_PENDING_PER_ORG,
        )
    used, _ = stored_bytes(org_id)
    reserved = sum(int(p.declared_size) for p in pending)
    quota = get_settings().media_bytes_per_org
    if used + reserved + size > quota:
        raise StorageQuotaReached(
            f"This organization stores {used:,} of its {quota:,} bytes and has uploads of "
            f"up to {reserved:,} bytes in progress: {size:,} more do not fit. Delete files "
            "to make room.",
            quota_bytes=quota,
            used_bytes=used,
            pending_bytes=reserved,
        )


def request_upload(*, user_id: str, request: CreateUploadRequest) -> tuple[MediaModel, UploadForm]:
    """Store the upload pending and answer its form; within the user's allowance of forms
    (ADR 24), which a refused request does not use."""
    require_org_role(request.org_id, user_id, _role_for(request))
    _check_declared(request)
    spent = rate_limit.spend(RateCounterModel, limits.UPLOAD_PER_USER, user_id)
    try:
        now = clock.now()
        _check_room(request.org_id, request.size, now)
        media = _record(user_id, request, now)
    except KumoError:
        spent.refund()
        raise
    form = _form(media, request)
    logger.info("upload form made", media_id=media.media_id, org_id=media.org_id)
    return media, form


def _record(user_id: str, request: CreateUploadRequest, now: float) -> MediaModel:
    media_id = new_id()
    deadline = int(now) + FORM_SECONDS
    media = MediaModel(
        media_key(media_id),
        media_id=media_id,
        org_id=request.org_id,
        purpose=request.purpose,
        state="pending",
        uploaded_by=user_id,
        file_name=request.file_name,
        declared_type=request.content_type.lower(),
        declared_size=request.size,
        created_at=clock.utc_iso(now),
        upload_deadline=deadline,
        gsi1pk=org_key(request.org_id),
        gsi1sk=media_id,
        gsi2pk=org_purpose_key(request.org_id, request.purpose),
        gsi2sk=media_id,
        expires_at=deadline + PENDING_KEEP_SECONDS,
    )
    pending = PendingUploadModel(
        org_key(request.org_id),
        pending_sort_key(media_id),
        media_id=media_id,
        declared_size=request.size,
        upload_deadline=deadline,
        expires_at=deadline + PENDING_KEEP_SECONDS,
    )
    with dynamo.transaction(lambda: None, changed=_CHANGED) as write:
        write.save(media, condition=MediaModel.pk.does_not_exist())
        write.save(pending, condition=PendingUploadModel.pk.does_not_exist())
    return media


def _form(media: MediaModel, request: CreateUploadRequest) -> UploadForm:
    key = quarantine_key(media.org_id, media.media_id)
    content_type = str(media.declared_type)
    post = s3().generate_presigned_post(
        Bucket=get_settings().media_bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        # The key and the type exactly, and no more bytes than declared: the policy is the
        # storage endpoint's first fence. The validator's judgement of the bytes is the one
        # that counts.
        Conditions=[
            {"Content-Type": content_type},
            ["content-length-range", 1, request.size],
        ],
        ExpiresIn=FORM_SECONDS,
    )
    return UploadForm(
        url=post["url"],
        fields={name: str(value) for name, value in post["fields"].items()},
        expires_at=clock.utc_iso(int(media.upload_deadline)),
        max_bytes=request.size,
    )
