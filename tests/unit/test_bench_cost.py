"""The cost model behind bench/telemetry.py: the arithmetic, checked by hand."""

from __future__ import annotations

import pytest

from bench.cost import (
    Operations,
    cost_per_million_readings,
    gb_seconds,
    iot_units,
    kumo_operations,
    naive_operations,
    price,
    sqs_units,
)


def test_iot_meters_started_5_kb_increments_and_at_least_one() -> None:
    assert [iot_units(n) for n in (0, 1, 5120, 5121, 10240, 10241)] == [1, 1, 1, 2, 2, 3]


def test_sqs_bills_each_started_64_kb_chunk() -> None:
    assert [sqs_units(n) for n in (0, 65536, 65537, 200_000)] == [1, 1, 2, 4]


def test_gb_seconds_use_memory_in_gib() -> None:
    assert gb_seconds(4, 250, 512) == pytest.approx(0.5)


def test_price_of_nothing_is_nothing() -> None:
    assert price(Operations(1, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0)).total == 0


def test_naive_design_per_million_readings() -> None:
    ops = naive_operations(
        readings=2_000_000,
        metrics_per_reading=4,
        message_bytes=120,
        invocation_ms=20,
        memory_mb=512,
    )
    assert ops.sqs_requests == 6_000_000
    assert ops.dynamodb_write_units == 26_000_000  # 1 put + 3 rollups x 4 metrics
    assert ops.lambda_gb_seconds == pytest.approx(20_000)
    cost = cost_per_million_readings(ops)
    assert cost.iot_messaging == pytest.approx(1.00)
    assert cost.iot_rules == pytest.approx(0.30)
    assert cost.sqs == pytest.approx(1.20)
    assert cost.lambda_requests == pytest.approx(0.20)
    assert cost.lambda_compute == pytest.approx(10_000 * 0.0000166667)
    assert cost.dynamodb_writes == pytest.approx(13 * 0.625)
    assert cost.dynamodb_reads == 0
    assert cost.total == pytest.approx(1.00 + 0.30 + 1.20 + 0.20 + 0.166667 + 8.125)


def test_kumo_design_batches_messages_and_prices_measured_units() -> None:
    # 25 messages of 10 readings: batches of 10, 10 and 5.
    ops = kumo_operations(
        readings=250,
        message_bytes=[800] * 24 + [6000],
        queued_bytes=[900] * 24 + [70_000],
        batch_size=10,
        invocation_ms=100,
        memory_mb=512,
        write_units=500,
        read_units=300,
    )
    assert ops.iot_messages == 24 + 2 == ops.rules_triggered == ops.rule_actions
    # sends: 24 + 2 chunks; receives: 1 + 1 + 2 (the last batch is 73.6 KB); deletes: 3
    assert ops.sqs_requests == 26 + 4 + 3
    assert ops.lambda_invocations == 3
    assert ops.lambda_gb_seconds == pytest.approx(0.15)
    cost = price(ops)
    assert cost.dynamodb_writes == pytest.approx(500 * 0.625e-6)
    assert cost.dynamodb_reads == pytest.approx(300 * 0.125e-6)
    per_million = cost_per_million_readings(ops)
    assert per_million.total == pytest.approx(cost.total * 4000)
    assert ops.per_million_readings()["lambda_invocations"] == pytest.approx(12_000)


def test_kumo_operations_need_one_queued_body_per_message() -> None:
    with pytest.raises(ValueError, match="one queued body"):
        kumo_operations(
            readings=1,
            message_bytes=[1],
            queued_bytes=[],
            batch_size=10,
            invocation_ms=1,
            memory_mb=512,
            write_units=0,
            read_units=0,
        )
