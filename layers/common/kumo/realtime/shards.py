"""Fan-out for channels that may be big (chat's): through a queue, in shards (ADR 29).

Up to INLINE_LIMIT subscribers, the sender posts itself, side by side (kumo.realtime.fanout).
Past it, the sender only queues: one message per SHARD_SIZE connections, each carrying the
frames, and the queue's consumer (functions/realtime/push_shard) posts a shard per invocation,
so a thousand sockets are served by ten invocations at once and the sender answers without
waiting for a thousand posts. A post that fails is logged, as inline ones are (the stream is
best effort: clients catch up with `after_seq`); a shard its consumer cannot run is delivered
again, then dead-lettered. Delivery is at least once, so clients key what they get (a chat
message by its sequence number).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Final

from aws_lambda_powertools import Logger

from kumo.core import aws
from kumo.core.config import get_settings
from kumo.realtime import fanout
from kumo.realtime.models import chat_channel, sketch_channel

logger = Logger(child=True)

INLINE_LIMIT: Final = 100
SHARD_SIZE: Final = 100
# SQS takes 10 entries and 256 KiB a batch; frames stay under 96 KiB (fanout.MAX_MESSAGE_BYTES).
_BATCH_ENTRIES: Final = 10
_BATCH_BYTES: Final = 200 * 1024


def publish_chat(org_id: str, channel_id: str, messages: list[dict[str, Any]]) -> int:
    """To the subscribers of a chat channel (kumo.chat checks who may subscribe): how many
    posts were made or queued. Never raises: the data is stored already."""
    return _publish(chat_channel(org_id, channel_id), messages)


def publish_sketch(org_id: str, sketch_id: str, messages: list[dict[str, Any]]) -> int:
    """To the viewers of a sketch, as publish_chat."""
    return _publish(sketch_channel(org_id, sketch_id), messages)


def _publish(channel: str, messages: list[dict[str, Any]]) -> int:
    try:
        return broadcast(channel, messages)
    except Exception:  # the stream is best effort; clients catch up with after_seq
        logger.exception("websocket fan-out failed", channel=channel)
        return 0


def broadcast(channel: str, messages: Sequence[dict[str, Any]]) -> int:
    targets = fanout.subscribers(channel)
    frames = [fanout.encode(m) for m in messages]
    if len(targets) <= INLINE_LIMIT:
        return fanout.post_all(channel, targets, frames)
    texts = [frame.decode() for frame in frames]
    bodies = [
        json.dumps({"channel": channel, "connections": shard, "frames": texts})
        for shard in _split(targets, SHARD_SIZE)
    ]
    for batch in _batches(bodies):
        _send(batch)
    logger.info("fan-out queued", channel=channel, connections=len(targets), shards=len(bodies))
    return len(targets) * len(frames)


def _split(targets: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(targets), size):
        yield list(targets[start : start + size])


def _batches(bodies: list[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for body in bodies:
        if batch and (len(batch) == _BATCH_ENTRIES or size + len(body) > _BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(body)
        size += len(body)
    if batch:
        yield batch


def _send(bodies: list[str]) -> None:
    entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies)]
    answer = aws.sqs().send_message_batch(
        QueueUrl=get_settings().fanout_queue_url,
        Entries=entries,  # type: ignore[arg-type]
    )
    failed = {int(entry["Id"]) for entry in answer.get("Failed", [])}
    if failed:
        # SQS took the others; these it refused (throttled, say): post them here instead.
        logger.warning("fan-out shards not queued; posted inline", shards=len(failed))
        for n in sorted(failed):
            post_shard(bodies[n])


def post_shard(body: str) -> int:
    """One queued shard: its frames to its connections; how many posts were delivered."""
    shard = json.loads(body)
    frames = [frame.encode() for frame in shard["frames"]]
    return fanout.post_all(str(shard["channel"]), list(shard["connections"]), frames)
