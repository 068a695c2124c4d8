"""Media table items. Key building for this context lives here and nowhere else.

Access patterns (all GetItem or Query):
  one file                    MEDIA#<id> / META
  an org's files              gsi1: ORG#<org> / <id>                 (newest first: ids sort)
  an org's files of a purpose gsi2: ORG#<org>#<purpose> / <id>       (newest first)
  an org's pending uploads    ORG#<org> / begins_with PENDING#       (what they may still add)
  an org's storage use        ORG#<org> / USAGE                      (bytes and objects)
  rate counters               RATE#<limit>#<subject> / WINDOW#<start> (kumo.core.rate_limit)
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, NumberSetAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from kumo.core.config import get_settings

META = "META"
USAGE = "USAGE"
PENDING_PREFIX = "PENDING#"


def media_key(media_id: str) -> str:
    return f"MEDIA#{media_id}"


def org_key(org_id: str) -> str:
    return f"ORG#{org_id}"


def org_purpose_key(org_id: str, purpose: str) -> str:
    return f"ORG#{org_id}#{purpose}"


def pending_sort_key(media_id: str) -> str:
    return f"{PENDING_PREFIX}{media_id}"


def quarantine_key(org_id: str, media_id: str) -> str:
    """Where the form uploads to: the only prefix the bucket tells the validator about, and
    one no download link is ever made for."""
    return f"quarantine/{org_id}/{media_id}"


def file_prefix(org_id: str, media_id: str, judgement: str) -> str:
    """Where one judgement writes a file's objects: a judgement of its own, so bytes a second
    upload with the same form brought can never overwrite the ones a record describes."""
    return f"media/{org_id}/{media_id}/{judgement}/"


def original_key(prefix: str) -> str:
    return f"{prefix}original"


def thumbnail_key(prefix: str, size: int) -> str:
    return f"{prefix}{size}.webp"


class MediaItem(Model):
    """An item of the media table: the table and its key, for every model stored there."""

    class Meta:
        table_name = get_settings().media_table
        region = get_settings().region

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class ByOrgIndex(GlobalSecondaryIndex["MediaModel"]):
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class ByPurposeIndex(GlobalSecondaryIndex["MediaModel"]):
    class Meta:
        index_name = "gsi2"
        projection = AllProjection()

    gsi2pk = UnicodeAttribute(hash_key=True)
    gsi2sk = UnicodeAttribute(range_key=True)


class MediaModel(MediaItem):
    """One file, from the form that uploads it to its deletion.

        pending ──validator judged the bytes──▶ ready | rejected

    Every change of `state` is conditioned on the state it leaves, so a redelivered S3 event
    changes nothing twice.
    """

    sk = UnicodeAttribute(range_key=True, default=META)
    media_id = UnicodeAttribute()
    org_id = UnicodeAttribute()
    purpose = UnicodeAttribute()
    state = UnicodeAttribute(default="pending")
    uploaded_by = UnicodeAttribute()
    file_name = UnicodeAttribute()
    # What the client said; never what the file is taken to be.
    declared_type = UnicodeAttribute()
    declared_size = NumberAttribute()
    created_at = UnicodeAttribute()
    # The form's expiry (epoch seconds): an upload still pending after it never came.
    upload_deadline = NumberAttribute()
    # Once judged: what the bytes are (sniffed), and what Kumo stored.
    kind = UnicodeAttribute(null=True)
    content_type = UnicodeAttribute(null=True)
    size = NumberAttribute(null=True)
    width = NumberAttribute(null=True)
    height = NumberAttribute(null=True)
    sha256 = UnicodeAttribute(null=True)
    # Sizes in pixels of the WebP thumbnails made (empty for a document).
    thumbnail_sizes = NumberSetAttribute(null=True)
    # Where the judged file's objects are (file_prefix).
    object_prefix = UnicodeAttribute(null=True)
    # Every object of the file (original and thumbnails): what it counts against the quota.
    stored_bytes = NumberAttribute(null=True)
    stored_objects = NumberAttribute(null=True)
    judged_at = UnicodeAttribute(null=True)
    # Why a file was rejected, in words for the uploader.
    reason = UnicodeAttribute(null=True)
    # The item of another context that carries the file (`chat:message:<id>`): only that
    # context's routes give links to it (kumo.media.service.hold).
    holder = UnicodeAttribute(null=True)
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    gsi2pk = UnicodeAttribute()
    gsi2sk = UnicodeAttribute()
    # Pending: the form's deadline plus slack; rejected: a week, so the uploader sees why.
    expires_at = NumberAttribute(null=True)

    by_org = ByOrgIndex()
    by_purpose = ByPurposeIndex()


class PendingUploadModel(MediaItem):
    """An upload not yet judged, in its org's partition: the bytes it may still add are
    counted against the quota when the next form is asked for."""

    media_id = UnicodeAttribute()
    declared_size = NumberAttribute()
    upload_deadline = NumberAttribute()
    expires_at = NumberAttribute()


class UsageModel(MediaItem):
    """What an org stores. Changed only in the transactions that make a file ready (on the
    condition that the quota holds) and that delete one."""

    sk = UnicodeAttribute(range_key=True, default=USAGE)
    org_id = UnicodeAttribute()
    bytes = NumberAttribute(default=0)
    objects = NumberAttribute(default=0)


class RateCounterModel(MediaItem):
    """A rate-limit window of this context's limits (kumo.core.rate_limit, ADR 24):
    RATE#<limit>#<sha256 of subject> / WINDOW#<window start>, removed by TTL."""

    hits = NumberAttribute(default=0)
    expires_at = NumberAttribute()
