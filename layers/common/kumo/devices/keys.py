"""Device API keys: format, hashing and the authorizer's lookup, kept free of PynamoDB.

A key is `kumo_dk_<device id>.<secret>`: the id lets the authorizer read the one device item
with a GetItem; only the SHA-256 of the whole key is stored. A high-entropy random key needs
no slow password hash, and the authorizer runs before every device request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import cache
from typing import Any

from kumo.core.errors import Unauthorized
from kumo.core.principal import Principal

PREFIX = "kumo_dk_"
DEVICE_ROLE = "device"


def new_key(device_id: str) -> str:
    return f"{PREFIX}{device_id}.{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(credential: str) -> bool:
    return credential.startswith(PREFIX)


def device_id_of(key: str) -> str:
    device_id, dot, secret = key.removeprefix(PREFIX).partition(".")
    if not dot or not secret or not 0 < len(device_id) <= 64:
        raise Unauthorized("Malformed device key.")
    return device_id


@cache
def _dynamodb() -> Any:
    import boto3  # only device requests pay for it; user requests never load boto3 here

    return boto3.client("dynamodb")


def authenticate_device(key: str, *, table: str) -> Principal:
    """The device the key belongs to, if the key is its current one and the device is enabled."""
    device_id = device_id_of(key)
    # The key kumo.devices.models builds, spelled out to keep PynamoDB out of the authorizer.
    key_attributes = {"pk": {"S": f"DEVICE#{device_id}"}, "sk": {"S": "META"}}
    response = _dynamodb().get_item(
        TableName=table,
        Key=key_attributes,
        ProjectionExpression="org_id, key_hash, enabled",
        ConsistentRead=True,
    )
    item: dict[str, Any] = response.get("Item") or {}
    stored = item.get("key_hash", {}).get("S", "")
    if not stored or not hmac.compare_digest(stored, hash_key(key)):
        raise Unauthorized("Unknown or revoked device key.")
    if not item.get("enabled", {}).get("BOOL", True):
        raise Unauthorized("This device is disabled.")
    return Principal(
        kind="device",
        subject_id=device_id,
        roles=(DEVICE_ROLE,),
        org_id=str(item["org_id"]["S"]),
    )
