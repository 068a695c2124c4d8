"""Where media's files live: the S3 client its functions sign and move files with, a file's
record, and what an org stores (the usage item the validator and deletions keep)."""

from __future__ import annotations

from functools import cache
from typing import Any

from kumo.core import dynamo
from kumo.core.ids import is_id
from kumo.media.models import META, USAGE, MediaModel, UsageModel, media_key, org_key


@cache
def s3() -> Any:  # no S3 stubs in the project's pins
    import boto3  # only media's functions pay for the client
    from botocore.config import Config

    # SigV4 everywhere: the default for presigning differs between regions and versions.
    return boto3.client("s3", config=Config(signature_version="s3v4"))


def find(media_id: str) -> MediaModel | None:
    """A file's record, read consistently (a state change must be seen at once)."""
    if not is_id(media_id):
        return None
    return dynamo.get_or_none(MediaModel, media_key(media_id), META, consistent_read=True)


def stored_bytes(org_id: str) -> tuple[int, int]:
    """What the org stores now: (bytes, objects)."""
    usage = dynamo.get_or_none(UsageModel, org_key(org_id), USAGE, consistent_read=True)
    return (int(usage.bytes), int(usage.objects)) if usage else (0, 0)
