"""A big channel's fan-out through the queue, in shards (kumo.realtime.shards), under moto:
the sender posts itself up to the inline limit and queues shards past it; each shard reaches
exactly its connections, and all of them together every subscriber once."""

from __future__ import annotations

import json
import time

import pytest
from kumo.core import aws
from kumo.core.config import get_settings
from kumo.realtime import shards
from kumo.realtime.models import ChannelMemberModel, channel_key, chat_channel

from tests.support.aws import posted_to
from tests.support.factories import websocket_connection

pytestmark = pytest.mark.usefixtures("aws", "fresh_management_client")

ORG, CHANNEL = "01ORG0000000000000000000AA", "01CHANNEL00000000000000000"


def _subscribed(count: int) -> list[str]:
    """`count` live connections subscribed to the chat channel."""
    stream = chat_channel(ORG, CHANNEL)
    ids = [websocket_connection(f"user-{n}") for n in range(count)]
    with ChannelMemberModel.batch_write() as batch:
        for connection_id in ids:
            batch.save(
                ChannelMemberModel(
                    channel_key(stream),
                    connection_id,
                    user_id="u",
                    expires_at=int(time.time()) + 3600,
                )
            )
    return ids


def _queued() -> list[str]:
    sqs, url = aws.sqs(), get_settings().fanout_queue_url
    bodies: list[str] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_a_channel_within_the_inline_limit_is_posted_by_the_sender() -> None:
    ids = _subscribed(shards.INLINE_LIMIT)

    delivered = shards.publish_chat(ORG, CHANNEL, [{"event": "message", "seq": 1}])

    assert delivered == shards.INLINE_LIMIT
    assert _queued() == []
    assert all(posted_to(i) == [{"event": "message", "seq": 1}] for i in ids)


def test_a_big_channel_is_queued_in_shards_that_reach_every_subscriber_once() -> None:
    # Given a channel with two and a half shards of subscribers
    ids = _subscribed(2 * shards.SHARD_SIZE + shards.SHARD_SIZE // 2)
    pushed = [{"event": "message", "seq": 7}]

    # When a message is pushed
    queued = shards.publish_chat(ORG, CHANNEL, pushed)

    # Then the sender posts nothing itself, and queues three shards covering everyone once
    assert queued == len(ids)
    assert all(posted_to(i) == [] for i in ids)
    bodies = _queued()
    shard_sizes = sorted(len(json.loads(b)["connections"]) for b in bodies)
    assert shard_sizes == [shards.SHARD_SIZE // 2, shards.SHARD_SIZE, shards.SHARD_SIZE]
    covered = [c for b in bodies for c in json.loads(b)["connections"]]
    assert sorted(covered) == sorted(ids)

    # And posting the shards (the consumer's work) gives each subscriber the message once
    assert sum(shards.post_shard(b) for b in bodies) == len(ids)
    assert all(posted_to(i) == pushed for i in ids)


def test_a_shard_goes_only_to_its_own_connections() -> None:
    ids = _subscribed(3)
    body = json.dumps(
        {"channel": chat_channel(ORG, CHANNEL), "connections": ids[:1], "frames": ['{"n":1}']}
    )

    assert shards.post_shard(body) == 1

    assert [posted_to(i) for i in ids] == [[{"n": 1}], [], []]
