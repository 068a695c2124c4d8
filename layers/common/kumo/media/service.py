"""Files after their upload: reading, links, deletion, and what other contexts call (ADR 28).

Tenant isolation: a file's org is read from its record, and the caller's membership of that
org is checked before anything else is said; a file of an org the caller is not in answers
the same 404 as one that does not exist.

Other contexts never touch media's table. Chat, learning and training check a reference with
`require_ready`, claim a file for their item with `hold`, and give links with `links_for`
after their own visibility check: a held file gets no links from media's own routes, so who
may see it stays the holder's rule. Billing reads an org's storage with `storage_used`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from aws_lambda_powertools import Logger
from pynamodb.exceptions import PynamoDBException

from kumo.core import clock, dynamo, events
from kumo.core.config import get_settings
from kumo.core.errors import Forbidden, NotFound, invalid
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor
from kumo.media.models import (
    ByOrgIndex,
    ByPurposeIndex,
    MediaModel,
    PendingUploadModel,
    UsageModel,
    media_key,
    org_key,
    org_purpose_key,
    original_key,
    pending_sort_key,
    quarantine_key,
    thumbnail_key,
)
from kumo.media.purposes import Purpose
from kumo.media.schemas import MediaLinks, MediaOut, UsageOut
from kumo.media.storage import find, s3, stored_bytes
from kumo.orgs.schemas import OrgRole
from kumo.orgs.service import require_org_role

logger = Logger(child=True)

LINK_SECONDS: Final = 5 * 60
NO_MEDIA: Final = "No such file."
_CHANGED: Final = "The file changed meanwhile; try again."


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A ready file, as another context may know it."""

    media_id: str
    org_id: str
    purpose: str
    content_type: str
    size: int
    width: int | None
    height: int | None
    holder: str | None


def _ref(media: MediaModel) -> MediaRef:
    return MediaRef(
        media_id=media.media_id,
        org_id=media.org_id,
        purpose=media.purpose,
        content_type=str(media.content_type),
        size=int(media.size or 0),
        width=int(media.width) if media.width is not None else None,
        height=int(media.height) if media.height is not None else None,
        holder=media.holder,
    )


def get_media_for(user_id: str, media_id: str, minimum_role: OrgRole) -> MediaModel:
    media = find(media_id)
    if media is None:
        raise NotFound(NO_MEDIA)
    try:
        require_org_role(media.org_id, user_id, minimum_role)
    except NotFound as error:
        raise NotFound(NO_MEDIA) from error
    return media


def list_media(
    *,
    user_id: str,
    org_id: str,
    purpose: Purpose | None,
    limit: int | None,
    cursor: str | None,
) -> tuple[list[MediaModel], str | None]:
    """Newest first: ids are time-ordered."""
    require_org_role(org_id, user_id, "viewer")
    index: ByOrgIndex | ByPurposeIndex
    if purpose is None:
        partition, index, attribute = org_key(org_id), MediaModel.by_org, "gsi1pk"
    else:
        partition = org_purpose_key(org_id, purpose)
        index, attribute = MediaModel.by_purpose, "gsi2pk"
    results = index.query(
        partition,
        scan_index_forward=False,
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(cursor, partition=(attribute, partition)),
    )
    files = list(results)
    return files, encode_cursor(results.last_evaluated_key)


def usage_for(*, user_id: str, org_id: str) -> UsageOut:
    require_org_role(org_id, user_id, "viewer")
    used, objects = stored_bytes(org_id)
    return UsageOut(
        org_id=org_id, bytes=used, objects=objects, quota_bytes=get_settings().media_bytes_per_org
    )


# --- links ----------------------------------------------------------------------------------


def _disposition(media: MediaModel) -> str:
    # A PDF is downloaded, never shown in the API's origin; a picture was re-encoded by Kumo.
    how = "inline" if str(media.content_type).startswith("image/") else "attachment"
    name = str(media.file_name)
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"{how}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def _link(key: str, content_type: str, disposition: str) -> str:
    url: str = s3().generate_presigned_url(
        "get_object",
        Params={
            "Bucket": get_settings().media_bucket,
            "Key": key,
            "ResponseContentType": content_type,
            "ResponseContentDisposition": disposition,
        },
        ExpiresIn=LINK_SECONDS,
    )
    return url


def _links(media: MediaModel) -> MediaLinks:
    disposition = _disposition(media)
    thumbnails = {
        str(int(size)): _link(
            thumbnail_key(str(media.object_prefix), int(size)), "image/webp", "inline"
        )
        for size in media.thumbnail_sizes or []
    }
    return MediaLinks(
        original=_link(
            original_key(str(media.object_prefix)), str(media.content_type), disposition
        ),
        thumbnails=thumbnails,
        expires_at=clock.utc_iso(clock.now() + LINK_SECONDS),
    )


def links_for(ref: MediaRef) -> MediaLinks:
    """Links to a ready file, for a context that has checked that its caller may see it."""
    media = find(ref.media_id)
    if media is None or media.state != "ready" or media.org_id != ref.org_id:
        raise NotFound(NO_MEDIA)
    return _links(media)


def links_of(media_id: str, org_id: str) -> tuple[MediaRef, MediaLinks] | None:
    """A ready file of the org and its links, for a holder that has checked its caller may see
    it; None once the file is gone (deleted since it was attached)."""
    media = find(media_id)
    if media is None or media.state != "ready" or media.org_id != org_id:
        return None
    return _ref(media), _links(media)


def media_out(media: MediaModel, *, with_links: bool = True) -> MediaOut:
    ready = media.state == "ready"
    return MediaOut(
        id=media.media_id,
        org_id=media.org_id,
        purpose=media.purpose,  # type: ignore[arg-type]
        state=media.state,  # type: ignore[arg-type]
        file_name=media.file_name,
        declared_type=media.declared_type,
        declared_size=int(media.declared_size),
        uploaded_by=media.uploaded_by,
        created_at=media.created_at,
        content_type=media.content_type,
        size=int(media.size) if media.size is not None else None,
        width=int(media.width) if media.width is not None else None,
        height=int(media.height) if media.height is not None else None,
        sha256=media.sha256,
        thumbnails=sorted(int(size) for size in media.thumbnail_sizes or []),
        judged_at=media.judged_at,
        reason=media.reason,
        held_by=media.holder,
        links=_links(media) if ready and with_links and media.holder is None else None,
    )


# --- for other contexts ---------------------------------------------------------------------


def require_ready(
    media_id: str,
    *,
    org_id: str | None,
    purpose: Purpose,
    field: str,
    uploaded_by: str | None = None,
) -> MediaRef:
    """The file a request refers to in `field`, if it is ready, of `org_id` (None: any org),
    of `purpose` and, when given, uploaded by `uploaded_by`; a 422 on that field otherwise.
    A file the caller could not see reads as missing, not as someone else's."""
    media = find(media_id)
    mine = media is not None and (uploaded_by is None or media.uploaded_by == uploaded_by)
    if media is None or not mine or (org_id is not None and media.org_id != org_id):
        raise invalid(field, "No such file.")
    if media.state != "ready":
        raise invalid(field, f"The file is {media.state}, not ready.")
    if media.purpose != purpose:
        raise invalid(field, f"The file was uploaded as a {media.purpose}, not a {purpose}.")
    return _ref(media)


def storage_used(org_id: str) -> tuple[int, int]:
    """What the org stores, (bytes, objects): the storage meter billing reads."""
    return stored_bytes(org_id)


def hold(ref: MediaRef, holder: str, *, field: str) -> None:
    """Claim a ready file for an item of another context (`chat:message:<id>`), the reference
    in the request's `field`. A file has one holder: claiming it again for the same holder is
    a no-op (a retried send), for another a 422 on the field."""
    media = MediaModel(media_key(ref.media_id))
    try:
        media.update(
            actions=[MediaModel.holder.set(holder)],
            condition=(MediaModel.state == "ready")
            & (MediaModel.org_id == ref.org_id)
            & (MediaModel.holder.does_not_exist() | (MediaModel.holder == holder)),
        )
    except PynamoDBException as error:
        if not dynamo.condition_failed(error):
            raise
        raise invalid(field, "The file is attached to something else, or gone.") from error


# --- deleting -------------------------------------------------------------------------------


def _keys(media: MediaModel) -> list[str]:
    keys = [quarantine_key(media.org_id, media.media_id)]
    if media.state == "ready":
        prefix = str(media.object_prefix)
        keys.append(original_key(prefix))
        keys += [thumbnail_key(prefix, int(size)) for size in media.thumbnail_sizes or []]
    return keys


def delete_media(*, user_id: str, media_id: str) -> None:
    """The uploader or an org admin removes a file: its objects first, then its record (and
    what it counted), then `media.deleted` goes on the bus for whoever refers to it. A delete
    that failed half-way is finished by the next."""
    media = get_media_for(user_id, media_id, "viewer")
    if media.uploaded_by != user_id:
        try:
            require_org_role(media.org_id, user_id, "admin")
        except Forbidden as error:
            raise Forbidden("Only the uploader or an org admin deletes a file.") from error
    bucket = get_settings().media_bucket
    s3().delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": key} for key in _keys(media)], "Quiet": True}
    )
    with dynamo.transaction(lambda: None, changed=_CHANGED) as write:
        write.delete(media, condition=MediaModel.state == media.state)
        if media.state == "ready":
            write.update(
                UsageModel(org_key(media.org_id)),
                actions=[
                    UsageModel.bytes.add(-int(media.stored_bytes or 0)),
                    UsageModel.objects.add(-int(media.stored_objects or 0)),
                ],
            )
        elif media.state == "pending":
            write.delete(PendingUploadModel(org_key(media.org_id), pending_sort_key(media_id)))
    events.publish(
        source="kumo.media",
        detail_type="media.deleted",
        detail={
            "media_id": media_id,
            "org_id": media.org_id,
            "purpose": media.purpose,
            "holder": media.holder,
            "deleted_by": user_id,
        },
    )
    logger.info("file deleted", media_id=media_id, org_id=media.org_id)
