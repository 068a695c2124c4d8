"""Where media's files live: the S3 client its functions sign and move files with, and what
an org stores (the usage item the validator and deletions keep)."""

from __future__ import annotations

from functools import cache
from typing import Any

from kumo.core import dynamo
from kumo.media.models import UsageModel, org_key


@cache
def s3() -> Any:  # no S3 stubs in the project's pins
    import boto3  # only media's functions pay for the client
    from botocore.config import Config

    # SigV4 everywhere: the default for presigning differs between regions and versions.
    return boto3.client("s3", config=Config(signature_version="s3v4"))


def stored_bytes(org_id: str) -> tuple[int, int]:
    """What the org stores now: (bytes, objects)."""
    usage = dynamo.get_or_none(UsageModel, org_key(org_id), consistent_read=True)
    return (int(usage.bytes), int(usage.objects)) if usage else (0, 0)
