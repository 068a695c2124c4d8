"""Pushing to WebSocket subscribers: readings (one message per device and batch), alerts and
device status. Called from ingestion, alert evaluation and the offline job, so it imports
only what a push needs.

The live stream is best effort and at least once: storage has already succeeded when a push
runs, so a failed push is logged and never fails the caller (a redelivered telemetry batch
may push its readings twice; clients key them by device and timestamp). A connection that
API Gateway reports gone is removed with its subscriptions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, Final

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import ClientError

from kumo.core.clock import utc_iso
from kumo.core.config import get_settings
from kumo.core.readings import Batch
from kumo.realtime.connections import remove_connection
from kumo.realtime.models import (
    ChannelMemberModel,
    channel_key,
    device_channel,
    org_channel,
    user_channel,
)

logger = Logger(child=True)

# API Gateway refuses frames over 128 KiB; stay well under it.
MAX_MESSAGE_BYTES: Final = 96 * 1024
# Posts to one channel's connections run side by side, this many at a time: each is a short
# HTTPS call, so threads wait on the network, not the CPU. The client keeps a connection each.
PARALLEL_POSTS: Final = 32


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


@cache
def management_client() -> Any:
    """API Gateway's management API for the WebSocket API: its endpoint is the API's own URL
    on AWS and the engine's /_aws/execute-api path locally (WEBSOCKET_MANAGEMENT_URL). Here,
    not in kumo.core.aws, so only functions that push need the variable."""
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=get_settings().websocket_management_url,
        config=Config(max_pool_connections=PARALLEL_POSTS),
    )


def post(connection_id: str, message: dict[str, Any] | bytes, *, channel: str = "") -> bool:
    """Send one message; False, and the connection forgotten, when it is gone."""
    data = message if isinstance(message, bytes) else encode(message)
    try:
        management_client().post_to_connection(ConnectionId=connection_id, Data=data)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "GoneException":
            raise
        remove_connection(connection_id, also=channel)
        return False
    return True


def subscribers(channel: str) -> list[str]:
    return [m.sk for m in ChannelMemberModel.query(channel_key(channel), attributes_to_get=["sk"])]


def broadcast(channel: str, messages: Sequence[dict[str, Any]]) -> int:
    """Every message to every connection on the channel; how many posts were delivered."""
    targets = subscribers(channel)
    if not targets:
        return 0
    return post_all(channel, targets, [encode(m) for m in messages])


def post_all(channel: str, targets: Sequence[str], frames: Sequence[bytes]) -> int:
    """Every frame to every connection: connections side by side, each one's frames in order;
    how many posts were delivered."""
    if not targets or not frames:
        return 0
    if len(targets) == 1:
        return _post_in_order(channel, targets[0], frames)
    with ThreadPoolExecutor(max_workers=min(PARALLEL_POSTS, len(targets))) as pool:
        return sum(pool.map(lambda target: _post_in_order(channel, target, frames), targets))


def _post_in_order(channel: str, connection_id: str, frames: Sequence[bytes]) -> int:
    delivered = 0
    for frame in frames:
        if not _post_quietly(channel, connection_id, frame):
            break  # gone (or failing): the rest would not arrive either
        delivered += 1
    return delivered


def _post_quietly(channel: str, connection_id: str, frame: bytes) -> bool:
    try:
        return post(connection_id, frame, channel=channel)
    except Exception:  # one bad connection must not stop the others
        logger.exception("websocket post failed", connection_id=connection_id)
        return False


def _chunks(readings: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for reading in readings:
        length = len(encode(reading)) + 1
        if chunk and size + length > MAX_MESSAGE_BYTES - 512:
            yield chunk
            chunk, size = [], 0
        chunk.append(reading)
        size += length
    if chunk:
        yield chunk


def publish_readings(batches: Sequence[Batch]) -> int:
    """One `readings` message per device (split only past the frame limit) to its subscribers."""
    by_device: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for batch in batches:
        readings = by_device.setdefault((batch.org_id, batch.device_id), [])
        readings.extend(
            {"ts": utc_iso(r.ts_ms / 1000), "metrics": r.metrics} for r in batch.readings
        )
    delivered = 0
    for (org_id, device_id), readings in by_device.items():
        readings.sort(key=lambda r: str(r["ts"]))
        messages = [
            {"event": "readings", "org_id": org_id, "device_id": device_id, "readings": chunk}
            for chunk in _chunks(readings)
        ]
        delivered += _safely(device_channel(org_id, device_id), messages)
    return delivered


def publish_alert(org_id: str, alert: dict[str, Any]) -> int:
    return _safely(org_channel(org_id, "alerts"), [{"event": "alert", "org_id": org_id, **alert}])


def publish_status(org_id: str, device_id: str, status: str, at: str) -> int:
    message = {
        "event": "device_status",
        "org_id": org_id,
        "device_id": device_id,
        "status": status,
        "at": at,
    }
    return _safely(org_channel(org_id, "status"), [message])


def publish_to_user(user_id: str, message: dict[str, Any]) -> int:
    """To the user's own system channel, on every connection that subscribed to it."""
    return _safely(user_channel(user_id), [message])


def _safely(channel: str, messages: list[dict[str, Any]]) -> int:
    try:
        return broadcast(channel, messages)
    except Exception:  # the data is stored already; the stream is best effort
        logger.exception("websocket fan-out failed", channel=channel)
        return 0
