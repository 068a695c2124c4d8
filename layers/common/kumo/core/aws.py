"""boto3 clients, created on first use and reused across warm invocations."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from mypy_boto3_ses import SESClient
    from mypy_boto3_sqs import SQSClient
    from pynamodb.connection import Connection


@cache
def sqs() -> SQSClient:
    return boto3.client("sqs")


@cache
def s3() -> Any:
    # Any: the project's boto3 stubs do not include S3.
    return boto3.client("s3")


@cache
def ses() -> SESClient:
    return boto3.client("ses")


@cache
def dynamodb() -> Connection:
    """PynamoDB's connection for transactions; a new one per call would build a new client."""
    from pynamodb.connection import Connection

    from kumo.core.config import get_settings

    return Connection(region=get_settings().region)
