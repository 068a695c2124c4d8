"""The AWS cost of telemetry ingestion, priced from counted operations (used by telemetry.py).

Pure arithmetic, no I/O: `bench/telemetry.py` counts what a run did and calls these;
tests/unit/test_bench_cost.py checks the sums.

Two designs, both priced per million readings:

- Kumo (`kumo_operations`): what the deployed pipeline does. One IoT message per published
  message (K readings packed in it), one rule trigger and one SQS action per message, one
  SendMessage per message (per 64 KB chunk of the body the rule enqueues), one Lambda
  invocation per SQS batch (BatchSize 10) with one ReceiveMessage (per 64 KB chunk of the
  batch) and one DeleteMessageBatch, and the DynamoDB units the caller measured.
- Naive (`naive_operations`): one reading per MQTT message, one Lambda invocation per
  reading (SQS batch of 1: send, receive and delete per reading), and in DynamoDB one
  PutItem per reading plus one UpdateItem per metric for each of the 1m, 1h and 1d
  rollups, every item under 1 KB (1 write unit each, not transactional), no reads: no
  device check, no last-seen or latest-value writes, no min/max, no exactly-once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

# AWS list prices in USD for us-east-1, as of 2025-06 (DynamoDB on-demand after its 2024-11-01
# price cut), written down from the AWS pricing pages, not fetched at run time. List prices
# only: free tiers, volume tiers past the first, and savings plans are left out.
IOT_MESSAGES_PER_MILLION = 1.00  # IoT Core messaging, first 1 billion messages a month
IOT_RULES_TRIGGERED_PER_MILLION = 0.15  # IoT Core rules engine, rules triggered
IOT_ACTIONS_PER_MILLION = 0.15  # IoT Core rules engine, actions executed
SQS_REQUESTS_PER_MILLION = 0.40  # SQS standard queue, after the first free million
LAMBDA_REQUESTS_PER_MILLION = 0.20
LAMBDA_GB_SECOND = 0.0000166667  # x86_64, first 6 billion GB-seconds a month
DYNAMODB_WRITE_UNITS_PER_MILLION = 0.625  # on-demand write request units
DYNAMODB_READ_UNITS_PER_MILLION = 0.125  # on-demand read request units

# IoT Core meters messages, rules triggered and actions executed in 5 KB increments.
IOT_METER_BYTES = 5 * 1024
# SQS bills each 64 KB chunk of a request's payload as one request.
SQS_CHUNK_BYTES = 64 * 1024
NAIVE_ROLLUP_RESOLUTIONS = 3  # 1m, 1h, 1d


@dataclass(frozen=True, slots=True)
class Operations:
    """What AWS would bill for `readings` readings (billed units, not API calls)."""

    readings: int
    iot_messages: int  # 5 KB units
    rules_triggered: int  # 5 KB units
    rule_actions: int  # 5 KB units
    sqs_requests: int  # 64 KB units
    lambda_invocations: int
    lambda_gb_seconds: float
    dynamodb_write_units: float
    dynamodb_read_units: float

    def per_million_readings(self) -> dict[str, float]:
        """Every count scaled to one million readings."""
        scale = 1_000_000 / self.readings
        return {f.name: getattr(self, f.name) * scale for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Cost:
    """USD by line item."""

    iot_messaging: float
    iot_rules: float
    sqs: float
    lambda_requests: float
    lambda_compute: float
    dynamodb_writes: float
    dynamodb_reads: float

    @property
    def total(self) -> float:
        return float(sum(getattr(self, f.name) for f in fields(self)))


def iot_units(message_bytes: int) -> int:
    """IoT Core's billed messages for one message: one per started 5 KB, at least one."""
    return max(1, math.ceil(message_bytes / IOT_METER_BYTES))


def sqs_units(payload_bytes: int) -> int:
    """SQS's billed requests for one request: one per started 64 KB, at least one."""
    return max(1, math.ceil(payload_bytes / SQS_CHUNK_BYTES))


def gb_seconds(invocations: int, billed_ms: float, memory_mb: int) -> float:
    return invocations * billed_ms / 1000 * memory_mb / 1024


def price(ops: Operations) -> Cost:
    """The list-price cost of the operations, in USD."""
    million = 1_000_000
    return Cost(
        iot_messaging=ops.iot_messages / million * IOT_MESSAGES_PER_MILLION,
        iot_rules=ops.rules_triggered / million * IOT_RULES_TRIGGERED_PER_MILLION
        + ops.rule_actions / million * IOT_ACTIONS_PER_MILLION,
        sqs=ops.sqs_requests / million * SQS_REQUESTS_PER_MILLION,
        lambda_requests=ops.lambda_invocations / million * LAMBDA_REQUESTS_PER_MILLION,
        lambda_compute=ops.lambda_gb_seconds * LAMBDA_GB_SECOND,
        dynamodb_writes=ops.dynamodb_write_units / million * DYNAMODB_WRITE_UNITS_PER_MILLION,
        dynamodb_reads=ops.dynamodb_read_units / million * DYNAMODB_READ_UNITS_PER_MILLION,
    )


def cost_per_million_readings(ops: Operations) -> Cost:
    scale = 1_000_000 / ops.readings
    cost = price(ops)
    return Cost(**{f.name: getattr(cost, f.name) * scale for f in fields(cost)})


def kumo_operations(
    *,
    readings: int,
    message_bytes: Sequence[int],
    queued_bytes: Sequence[int],
    batch_size: int,
    invocation_ms: float,
    memory_mb: int,
    write_units: float,
    read_units: float,
) -> Operations:
    """Kumo's pipeline for the given messages, in publish order.

    message_bytes: each MQTT message as published (topic plus payload); queued_bytes: each
    SQS body the rule enqueues (the payload plus the fields the rule adds). Messages are
    taken by the poller in full batches of `batch_size`, each costing one ReceiveMessage
    (per 64 KB chunk of the batch) and one DeleteMessageBatch; every invocation bills
    `invocation_ms`. The DynamoDB units are the caller's measurement."""
    if len(message_bytes) != len(queued_bytes):
        raise ValueError("one queued body per published message")
    iot = sum(iot_units(size) for size in message_bytes)
    batches = [queued_bytes[i : i + batch_size] for i in range(0, len(queued_bytes), batch_size)]
    sends = sum(sqs_units(size) for size in queued_bytes)
    receives = sum(sqs_units(sum(batch)) for batch in batches)
    deletes = len(batches)
    return Operations(
        readings=readings,
        iot_messages=iot,
        rules_triggered=iot,
        rule_actions=iot,
        sqs_requests=sends + receives + deletes,
        lambda_invocations=len(batches),
        lambda_gb_seconds=gb_seconds(len(batches), invocation_ms, memory_mb),
        dynamodb_write_units=write_units,
        dynamodb_read_units=read_units,
    )


def naive_operations(
    *,
    readings: int,
    metrics_per_reading: int,
    message_bytes: int,
    invocation_ms: float,
    memory_mb: int,
) -> Operations:
    """One reading per message and per invocation; 1 + 3 x metrics write units a reading."""
    units = iot_units(message_bytes)
    return Operations(
        readings=readings,
        iot_messages=readings * units,
        rules_triggered=readings * units,
        rule_actions=readings * units,
        sqs_requests=readings * 3,  # send, receive (a batch of 1), delete
        lambda_invocations=readings,
        lambda_gb_seconds=gb_seconds(readings, invocation_ms, memory_mb),
        dynamodb_write_units=readings * (1 + NAIVE_ROLLUP_RESOLUTIONS * metrics_per_reading),
        dynamodb_read_units=0.0,
    )
