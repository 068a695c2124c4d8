"""Request and response bodies of /api/v1/media."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from kumo.core.schemas import SPACES, StrictModel
from kumo.media.purposes import RULES, Purpose

MediaState = Literal["pending", "ready", "rejected"]
Id = Annotated[str, StringConstraints(min_length=26, max_length=26)]
MAX_FILE_NAME = 255
# A name to save the file under: no path, no control character, something besides spaces.
FileName = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=MAX_FILE_NAME,
        pattern=rf"^[^/\\\x00-\x1f\x7f]*[^/\\\x00-\x1f\x7f{SPACES}][^/\\\x00-\x1f\x7f]*$",
    ),
]
# type/subtype as RFC 6838 spells it; parameters (`; charset=`) are not part of it.
_PART = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"
ContentType = Annotated[str, StringConstraints(max_length=127, pattern=rf"^{_PART}/{_PART}$")]
LARGEST = max(rules.max_bytes for rules in RULES.values())


class CreateUploadRequest(StrictModel):
    org_id: Id
    purpose: Purpose = Field(
        description="What the file is for; it decides the kinds and size allowed."
    )
    file_name: FileName = Field(description="The name the file is downloaded under.")
    content_type: ContentType = Field(
        description="What the client takes the file to be. Kumo judges the bytes, not this."
    )
    size: int = Field(
        ge=1, le=LARGEST, description="The file's size in bytes: the most the form accepts."
    )


class UploadForm(BaseModel):
    """A pre-signed POST: send `fields` and then the file (as the last field, `file`) as
    multipart/form-data to `url`."""

    url: str
    fields: dict[str, str]
    expires_at: str
    max_bytes: int


class MediaLinks(BaseModel):
    """Pre-signed GETs, valid until `expires_at`."""

    original: str
    # Longest side in pixels → a WebP no larger than that.
    thumbnails: dict[str, str]
    expires_at: str


class MediaOut(BaseModel):
    id: str
    org_id: str
    purpose: Purpose
    state: MediaState
    file_name: str
    declared_type: str
    declared_size: int
    uploaded_by: str
    created_at: str
    # Once judged; the type is what the bytes are.
    content_type: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    sha256: str | None = None
    thumbnails: list[int] = Field(default_factory=list)
    judged_at: str | None = None
    reason: str | None = Field(default=None, description="Why the file was rejected.")
    held_by: str | None = Field(
        default=None,
        description="The context whose item carries the file; only its routes give links.",
    )
    links: MediaLinks | None = None


class UploadOut(BaseModel):
    media: MediaOut
    upload: UploadForm


class UsageOut(BaseModel):
    org_id: str
    bytes: int
    objects: int
    quota_bytes: int
