"""Telemetry storage under moto: the device contract, packed raw items, rollups, latest values."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

# PynamoDB fixes Meta.table_name when the model class is created: set it before the import.
os.environ.setdefault("TELEMETRY_TABLE", "kumo-test-telemetry")
TABLE = os.environ["TELEMETRY_TABLE"]

from botocore.exceptions import ClientError  # noqa: E402
from kumo.core.errors import BadRequest, ValidationFailed  # noqa: E402
from kumo.telemetry import models, store  # noqa: E402
from kumo.telemetry import rollups as rollup_items  # noqa: E402
from kumo.telemetry.contract import (  # noqa: E402
    MAX_PAYLOAD_BYTES,
    Batch,
    Reading,
    Rejection,
    decode_payload,
    parse_payload,
)
from kumo.telemetry.errors import PayloadTooLarge  # noqa: E402
from kumo.telemetry.models import RawReadingsModel, RollupModel  # noqa: E402
from kumo.telemetry.query import (  # noqa: E402
    LatestValue,
    RawPoint,
    RollupPoint,
    latest,
    query_readings,
)
from kumo.telemetry.store import store_batches  # noqa: E402

# The table as template.yaml declares it (see the TelemetryTable resource).
TABLE_DEFINITION: dict[str, Any] = {
    "TableName": TABLE,
    "BillingMode": "PAY_PER_REQUEST",
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
}

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


NOW = ms("2024-05-01T12:00:00+00:00")


@pytest.fixture(autouse=True)
def telemetry_table(aws: None) -> None:
    """The telemetry table in the test's moto account (template.yaml may declare it already)."""
    import boto3

    client = boto3.client("dynamodb")
    if TABLE not in client.list_tables()["TableNames"]:
        client.create_table(**TABLE_DEFINITION)


@pytest.fixture
def transactions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The action count of every TransactWriteItems call, cancelled ones included."""
    sizes: list[int] = []
    real = models.client

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(real(), name)

        def transact_write_items(self, **kwargs: Any) -> Any:
            sizes.append(len(kwargs["TransactItems"]))
            return real().transact_write_items(**kwargs)

    monkeypatch.setattr(models, "client", Recording)
    return sizes


def new_device() -> str:
    return f"dev-{uuid.uuid4().hex[:12]}"


def reading(at: str | int, **metrics: float) -> Reading:
    return Reading(ts_ms=at if isinstance(at, int) else ms(at), metrics=dict(metrics))


def batch(device: str, *readings: Reading, org: str = "org-1") -> Batch:
    return Batch(org_id=org, device_id=device, readings=readings)


def all_pages(fetch: Callable[[str | None], tuple[list[Any], str | None]]) -> list[Any]:
    points, cursor = fetch(None)
    while cursor is not None:
        more, cursor = fetch(cursor)
        points += more
    return points


def raw_values(device: str, metric: str, start: int = 0, end: int = NOW + DAY) -> list[float]:
    points = all_pages(
        lambda cursor: query_readings(
            device_id=device,
            metric=metric,
            start_ms=start,
            end_ms=end,
            resolution="raw",
            limit=100,
            cursor=cursor,
        )
    )
    return [point.value for point in points]


def rollups(device: str, metric: str, resolution: Any, start: int = 0) -> list[tuple[Any, ...]]:
    points = all_pages(
        lambda cursor: query_readings(
            device_id=device,
            metric=metric,
            start_ms=start,
            end_ms=NOW + DAY,
            resolution=resolution,
            limit=100,
            cursor=cursor,
        )
    )
    return [(p.ts, p.count, p.sum, p.min, p.max, p.avg) for p in points]


def raw_items(device: str) -> list[RawReadingsModel]:
    return list(RawReadingsModel.query(f"RAW#{device}"))


# --- decode_payload -------------------------------------------------------------------------


def test_decode_payload_refuses_more_than_128_kib() -> None:
    # Given a message one byte over the limit
    raw = b'{"metrics": {"a": 1}, "client_id": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}'

    # When / Then it is refused before parsing
    with pytest.raises(PayloadTooLarge):
        decode_payload(raw)


def test_decode_payload_accepts_a_message_of_exactly_128_kib() -> None:
    # Given a message of exactly the limit
    head = b'{"metrics": {"a": 1}, "client_id": "'
    raw = head + b"x" * (MAX_PAYLOAD_BYTES - len(head) - 2) + b'"}'

    # When it is decoded
    payload = decode_payload(raw)

    # Then it is the JSON sent
    assert isinstance(payload, dict) and payload["metrics"] == {"a": 1}


def test_decode_payload_refuses_invalid_json() -> None:
    with pytest.raises(ValidationFailed):
        decode_payload("{not json")


# --- parse_payload: the contract ------------------------------------------------------------


def test_parse_payload_single_reading_with_epoch_ms() -> None:
    # Given one reading with an epoch-milliseconds time
    payload = {"ts": NOW - 1_000, "metrics": {"temperature": 21.5, "humidity": 40}}

    # When it is parsed
    readings, rejections = parse_payload(payload, now_ms=NOW)

    # Then it is one reading with float values
    assert readings == [Reading(ts_ms=NOW - 1_000, metrics={"temperature": 21.5, "humidity": 40.0})]
    assert rejections == []


def test_parse_payload_iso_ts_with_offset() -> None:
    readings, _ = parse_payload(
        {"ts": "2024-05-01T13:59:00+02:00", "metrics": {"a": 1}}, now_ms=NOW
    )

    assert readings[0].ts_ms == NOW - MINUTE


def test_parse_payload_iso_ts_with_z_and_milliseconds() -> None:
    readings, _ = parse_payload({"ts": "2024-05-01T11:59:59.123Z", "metrics": {"a": 1}}, now_ms=NOW)

    assert readings[0].ts_ms == NOW - 877


def test_parse_payload_missing_ts_is_the_receive_time() -> None:
    readings, _ = parse_payload({"metrics": {"a": 1}}, now_ms=NOW)

    assert readings[0].ts_ms == NOW


def test_parse_payload_batch_keeps_every_reading_in_order() -> None:
    # Given a batch of three readings
    payload = {
        "readings": [
            {"ts": NOW - 3_000, "metrics": {"a": 1}},
            {"ts": "2024-05-01T11:59:58Z", "metrics": {"a": 2}},
            {"metrics": {"a": 3}},
        ]
    }

    # When it is parsed
    readings, rejections = parse_payload(payload, now_ms=NOW)

    # Then all three come back in the order sent
    assert [(r.ts_ms, r.metrics["a"]) for r in readings] == [
        (NOW - 3_000, 1.0),
        (NOW - 2_000, 2.0),
        (NOW, 3.0),
    ]
    assert rejections == []


def test_parse_payload_ignores_the_iot_rule_envelope() -> None:
    # Given the keys the IoT rule adds beside the reading
    payload = {
        "metrics": {"a": 1},
        "org_id": "someone-else",
        "device_id": "another-device",
        "received_at": NOW,
        "client_id": "thing",
    }

    # When it is parsed, Then the reading is accepted as is
    readings, rejections = parse_payload(payload, now_ms=NOW)
    assert readings == [Reading(ts_ms=NOW, metrics={"a": 1.0})]
    assert rejections == []


def test_parse_payload_mixed_batch_keeps_the_good_readings() -> None:
    # Given a batch where the middle reading is bad
    payload = {
        "readings": [
            {"ts": NOW, "metrics": {"a": 1}},
            {"ts": NOW, "metrics": {"a": "warm"}},
            {"ts": NOW, "metrics": {"b": 2}},
        ]
    }

    # When it is parsed
    readings, rejections = parse_payload(payload, now_ms=NOW)

    # Then the good ones are kept and the bad one is named by its index
    assert [r.metrics for r in readings] == [{"a": 1.0}, {"b": 2.0}]
    assert rejections == [Rejection(index=1, reason="metric 'a' must be a number")]


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"metrics": {"1abc": 1}}, "metric name '1abc' is not allowed"),
        ({"metrics": {"has space": 1}}, "metric name 'has space' is not allowed"),
        ({"metrics": {"a\n": 1}}, "is not allowed"),
        ({"metrics": {"a" * 65: 1}}, "is not allowed"),
        ({"metrics": {"a#b": 1}}, "is not allowed"),
        ({"ts": NOW}, "metrics is missing"),
        ({"metrics": {}}, "a reading holds 1 to 32 metrics"),
        ({"metrics": {f"m{i}": i for i in range(33)}}, "a reading holds 1 to 32 metrics"),
        ({"metrics": [1, 2]}, "metrics must be an object"),
        ({"metrics": {"a": True}}, "metric 'a' must be a number"),
        ({"metrics": {"a": None}}, "metric 'a' must be a number"),
        ({"metrics": {"a": float("nan")}}, "metric 'a' must be finite"),
        ({"metrics": {"a": float("inf")}}, "metric 'a' must be finite"),
        ({"metrics": {"a": 1e15 + 2}}, "metric 'a' is beyond"),
        ({"metrics": {"a": -(10**400)}}, "metric 'a' is beyond"),
        ({"metrics": {"a": 9e-270}}, "metric 'a' must be 0 or at least 1e-130 in magnitude"),
        ({"ts": NOW + 5 * MINUTE + 1, "metrics": {"a": 1}}, "more than 5 minutes in the future"),
        ({"ts": NOW - 7 * DAY - 1, "metrics": {"a": 1}}, "more than 7 days old"),
        ({"ts": "2024-05-01T12:00:00", "metrics": {"a": 1}}, "ts needs an offset or Z"),
        ({"ts": "yesterday", "metrics": {"a": 1}}, "ts is not an ISO-8601 time"),
        ({"ts": float(NOW), "metrics": {"a": 1}}, "ts must be epoch milliseconds"),
        ({"ts": True, "metrics": {"a": 1}}, "ts must be epoch milliseconds"),
        ({"ts": NOW, "metrics": {"a": 1}, "timestamp": NOW}, "unknown field 'timestamp'"),
        ("21.5", "a reading must be a JSON object"),
    ],
    ids=[
        "name-starts-with-digit",
        "name-with-space",
        "name-with-trailing-newline",
        "name-of-65-characters",
        "name-with-hash",
        "no-metrics",
        "no-metric-at-all",
        "33-metrics",
        "metrics-not-an-object",
        "boolean-value",
        "null-value",
        "nan",
        "infinity",
        "over-1e15",
        "huge-integer",
        "below-dynamodb-magnitude",
        "too-far-in-the-future",
        "older-than-7-days",
        "iso-without-offset",
        "not-a-time",
        "float-epoch",
        "boolean-ts",
        "unknown-reading-field",
        "reading-not-an-object",
    ],
)
def test_parse_payload_rejects_the_bad_reading(entry: Any, reason: str) -> None:
    # Given a batch with a good reading and one that breaks a rule
    payload = {"readings": [{"ts": NOW, "metrics": {"ok": 1}}, entry]}

    # When it is parsed
    readings, rejections = parse_payload(payload, now_ms=NOW)

    # Then the bad one is refused with its reason and the good one kept
    assert [r.metrics for r in readings] == [{"ok": 1.0}]
    assert [r.index for r in rejections] == [1]
    assert reason in rejections[0].reason


def test_parse_payload_accepts_every_limit_exactly() -> None:
    # Given readings right at each limit
    widest = {f"m{i}": i for i in range(31)} | {"a" + "b" * 63: 1}
    payload = {
        "readings": [
            {"ts": NOW + 5 * MINUTE, "metrics": {"a": 1e15}},
            {"ts": NOW - 7 * DAY, "metrics": {"a.b_c-d": -1e15}},
            {"ts": NOW, "metrics": widest},
        ]
    }

    # When it is parsed, Then nothing is refused
    readings, rejections = parse_payload(payload, now_ms=NOW)
    assert rejections == []
    assert len(readings) == 3


def test_parse_payload_refuses_a_batch_of_more_than_500_readings() -> None:
    payload = {"readings": [{"metrics": {"a": 1}}] * 501}

    with pytest.raises(ValidationFailed):
        parse_payload(payload, now_ms=NOW)


def test_parse_payload_accepts_a_batch_of_500_readings() -> None:
    readings, _ = parse_payload({"readings": [{"metrics": {"a": 1}}] * 500}, now_ms=NOW)

    assert len(readings) == 500


@pytest.mark.parametrize(
    "payload",
    [
        [{"metrics": {"a": 1}}],
        {"readings": {"metrics": {"a": 1}}},
        {"metrics": {"a": 1}, "temperature": 21},
        {"readings": [], "metrics": {"a": 1}},
    ],
    ids=["not-an-object", "readings-not-a-list", "unknown-top-level-key", "both-forms"],
)
def test_parse_payload_refuses_a_payload_outside_the_contract(payload: Any) -> None:
    with pytest.raises(ValidationFailed):
        parse_payload(payload, now_ms=NOW)


# --- store_batches and query_readings -------------------------------------------------------


def test_store_batches_then_raw_query_returns_every_reading_of_the_metric() -> None:
    # Given two messages of one device, the second without humidity
    device = new_device()
    store_batches(
        [
            batch(device, reading(NOW - 3_000, temperature=20, humidity=40)),
            batch(
                device, reading(NOW - 2_000, temperature=21), reading(NOW - 1_000, temperature=22)
            ),
        ]
    )

    # When each metric is queried raw
    points, cursor = query_readings(
        device_id=device,
        metric="temperature",
        start_ms=NOW - MINUTE,
        end_ms=NOW,
        resolution="raw",
        limit=None,
        cursor=None,
    )

    # Then every reading of that metric comes back, oldest first, with ISO times
    assert points == [
        RawPoint(ts="2024-05-01T11:59:57.000Z", value=20.0),
        RawPoint(ts="2024-05-01T11:59:58.000Z", value=21.0),
        RawPoint(ts="2024-05-01T11:59:59.000Z", value=22.0),
    ]
    assert cursor is None
    assert raw_values(device, "humidity") == [40.0]


def test_store_batches_packs_one_message_into_one_raw_item() -> None:
    # Given a message of 50 readings
    device = new_device()
    readings = [reading(NOW - 50_000 + i * 1_000, a=i, b=1, c=2) for i in range(50)]

    # When it is stored
    report = store_batches([batch(device, *readings)])

    # Then it is one item holding all 50
    assert report.stored == 50
    assert [int(item.n) for item in raw_items(device)] == [50]


def test_query_readings_raw_finds_a_message_that_starts_before_the_range() -> None:
    # Given a message from 09:55 to 10:04
    device = new_device()
    minutes = [ms(f"2024-05-01T{t}:00+00:00") for t in ("09:55", "09:59", "10:00", "10:04")]
    store_batches([batch(device, *(reading(t, a=i) for i, t in enumerate(minutes)))])

    # When readings from 10:00 are asked for
    values = raw_values(device, "a", start=ms("2024-05-01T10:00:00+00:00"))

    # Then the message's readings inside the range come back, and only those
    assert values == [2.0, 3.0]


def test_query_readings_raw_excludes_readings_after_the_end() -> None:
    device = new_device()
    store_batches([batch(device, reading(NOW - 2_000, a=1), reading(NOW, a=2))])

    assert raw_values(device, "a", end=NOW - 1) == [1.0]


# Several batches over four minutes, three hours and two days. Batch D lowers the 10:00 minimum
# and batch B raises the 10:01 maximum after their buckets exist: the min/max path after the
# transaction, not only the values a new bucket starts with.
ROLLUP_BATCHES = [
    [("2024-05-01T10:00:10", 1), ("2024-05-01T10:00:40", 2), ("2024-05-01T10:01:05", 4)],
    [("2024-05-01T10:01:30", 8), ("2024-05-01T11:15:00", 16)],
    [("2024-04-30T23:59:59", 32)],
    [("2024-05-01T10:00:50", 0.5)],
]
EXPECTED_ROLLUPS = {
    "1m": [
        ("2024-04-30T23:59:00.000Z", 1, 32.0, 32.0, 32.0, 32.0),
        ("2024-05-01T10:00:00.000Z", 3, 3.5, 0.5, 2.0, 3.5 / 3),
        ("2024-05-01T10:01:00.000Z", 2, 12.0, 4.0, 8.0, 6.0),
        ("2024-05-01T11:15:00.000Z", 1, 16.0, 16.0, 16.0, 16.0),
    ],
    "1h": [
        ("2024-04-30T23:00:00.000Z", 1, 32.0, 32.0, 32.0, 32.0),
        ("2024-05-01T10:00:00.000Z", 5, 15.5, 0.5, 8.0, 3.1),
        ("2024-05-01T11:00:00.000Z", 1, 16.0, 16.0, 16.0, 16.0),
    ],
    "1d": [
        ("2024-04-30T00:00:00.000Z", 1, 32.0, 32.0, 32.0, 32.0),
        ("2024-05-01T00:00:00.000Z", 6, 31.5, 0.5, 16.0, 5.25),
    ],
}


@pytest.mark.parametrize("resolution", ["1m", "1h", "1d"])
def test_query_readings_rollups_are_exact_across_batches(resolution: str) -> None:
    # Given the batches above, each stored in its own call
    device = new_device()
    for readings in ROLLUP_BATCHES:
        store_batches(
            [batch(device, *(reading(f"{at}+00:00", temperature=v) for at, v in readings))]
        )

    # When the rollups are queried
    points = rollups(device, "temperature", resolution)

    # Then every bucket holds its exact count, sum, min, max and average
    assert points == EXPECTED_ROLLUPS[resolution]


def test_query_readings_rollups_include_the_bucket_holding_the_start() -> None:
    # Given readings at 10:10 and 11:10
    device = new_device()
    store_batches(
        [
            batch(device, reading("2024-05-01T10:10:00+00:00", a=1)),
            batch(device, reading("2024-05-01T11:10:00+00:00", a=2)),
        ]
    )

    # When hours are asked for from 10:30
    points = rollups(device, "a", "1h", start=ms("2024-05-01T10:30:00+00:00"))

    # Then the 10:00 bucket, which overlaps the range, is included
    assert [p[0] for p in points] == ["2024-05-01T10:00:00.000Z", "2024-05-01T11:00:00.000Z"]


def test_query_readings_rollup_sum_is_exact_in_decimal() -> None:
    device = new_device()
    store_batches([batch(device, reading(NOW - 2_000, a=0.1), reading(NOW - 1_000, a=0.2))])

    assert rollups(device, "a", "1m")[0][2] == 0.3


def test_store_batches_same_batch_twice_is_stored_once() -> None:
    # Given a message already stored
    device = new_device()
    message = batch(device, reading(NOW - 1_000, a=1), reading(NOW, a=2))
    store_batches([message])

    # When it is delivered again
    report = store_batches([message])

    # Then nothing new is stored and its readings count as duplicates
    assert (report.stored, report.duplicates) == (0, 2)
    assert raw_values(device, "a") == [1.0, 2.0]


def test_store_batches_duplicate_leaves_rollups_unchanged() -> None:
    # Given a message already stored, and its rollups
    device = new_device()
    message = batch(device, reading(NOW - 1_000, a=1), reading(NOW, a=2))
    store_batches([message])
    before = {res: rollups(device, "a", res) for res in ("1m", "1h", "1d")}

    # When the same payload is published again (a new Batch from the same content)
    store_batches([batch(device, reading(NOW, a=2), reading(NOW - 1_000, a=1))])

    # Then no rollup moved
    assert {res: rollups(device, "a", res) for res in ("1m", "1h", "1d")} == before


def test_store_batches_same_batch_twice_in_one_call_is_stored_once() -> None:
    # Given one message twice in one call (SQS can hand a worker both copies)
    device = new_device()
    message = batch(device, reading(NOW, a=5))

    # When they are stored
    report = store_batches([message, message])

    # Then one is stored and one is a duplicate, and the count is one
    assert (report.stored, report.duplicates) == (1, 1)
    assert rollups(device, "a", "1m")[0][1] == 1


def test_store_batches_redelivered_among_new_messages_stores_only_the_new(
    transactions: list[int],
) -> None:
    # Given a message already stored
    device = new_device()
    old = batch(device, reading(NOW - 3_000, a=1))
    store_batches([old])
    transactions.clear()

    # When it comes back in one call with two new messages of the same device
    report = store_batches(
        [
            batch(device, reading(NOW - 2_000, a=2)),
            old,
            batch(device, reading(NOW - 1_000, a=4)),
        ]
    )

    # Then the slot's read finds it stored: one transaction writes only the new, and the
    # counts are exact
    assert (report.stored, report.duplicates) == (2, 1)
    assert len(transactions) == 1
    assert rollups(device, "a", "1m") == [("2024-05-01T11:59:00.000Z", 3, 7.0, 1.0, 4.0, 7 / 3)]


def test_store_batches_repairs_min_and_max_when_redelivered_after_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a bucket holding 5, and a message holding 1 and 9 whose invocation died right
    # after its transaction, before min and max were applied
    device = new_device()
    store_batches([batch(device, reading(NOW - 3_000, a=5))])
    message = batch(device, reading(NOW - 2_000, a=1), reading(NOW - 1_000, a=9))
    with monkeypatch.context() as patch:

        def crash(*_: Any) -> None:
            raise RuntimeError("the invocation died")

        patch.setattr(store, "_apply_extremes_and_latest", crash)
        with pytest.raises(RuntimeError):
            store_batches([message])

    # When SQS redelivers it
    report = store_batches([message])

    # Then it is a duplicate for counts, but min and max are repaired
    assert report.duplicates == 2
    assert rollups(device, "a", "1m") == [("2024-05-01T11:59:00.000Z", 3, 15.0, 1.0, 9.0, 5.0)]


def test_store_batches_aggregates_rollups_across_the_messages_of_a_chunk(
    transactions: list[int],
) -> None:
    # Given ten messages of one device within one minute, three metrics each
    device = new_device()
    messages = [batch(device, reading(NOW - 50_000 + i * 5_000, a=i, b=i, c=i)) for i in range(10)]

    # When they are stored in one call
    store_batches(messages)

    # Then one transaction holds one put (the minute's fragment, all ten readings) and one
    # update per resolution, every metric in it
    assert transactions == [1 + 3]
    assert [int(item.n) for item in raw_items(device)] == [10]
    assert [p[1:3] for p in rollups(device, "c", "1m")] == [(10, 45.0)]


def test_store_batches_splits_more_than_100_actions_into_several_transactions(
    transactions: list[int],
) -> None:
    # Given 150 messages, one a minute: 150 puts and 150 + 3 + 1 rollup updates
    device = new_device()
    start = ms("2024-05-01T09:00:00+00:00")
    messages = [batch(device, reading(start + i * MINUTE, a=i)) for i in range(150)]

    # When they are stored in one call
    report = store_batches(messages)

    # Then no transaction exceeds 100 actions and the counts are exact
    assert report.stored == 150
    assert len(transactions) > 1
    assert max(transactions) <= 100
    assert rollups(device, "a", "1h") == [
        ("2024-05-01T09:00:00.000Z", 60, 1770.0, 0.0, 59.0, 29.5),
        ("2024-05-01T10:00:00.000Z", 60, 5370.0, 60.0, 119.0, 89.5),
        ("2024-05-01T11:00:00.000Z", 30, 4035.0, 120.0, 149.0, 134.5),
    ]


def wide_message(device: str) -> Batch:
    """32 metrics over three minutes: under the old layout (one rollup item per metric) 160
    rollup updates, more than one transaction holds; now 3 minutes + 1 hour + 1 day."""
    return batch(
        device,
        *(
            reading(NOW - 3 * MINUTE + i * MINUTE, **{f"m{k}": k + i for k in range(32)})
            for i in range(3)
        ),
    )


def test_store_batches_stores_32_metrics_over_three_minutes_in_one_transaction(
    transactions: list[int],
) -> None:
    # Given a message of 32 metrics over three minutes
    device = new_device()

    # When it is stored
    report = store_batches([wide_message(device)])

    # Then one transaction holds a fragment per minute and one update per distinct minute,
    # hour and day
    assert report.stored == 3
    assert len(raw_items(device)) == 3
    assert transactions == [3 + 3 + 1 + 1]
    assert raw_values(device, "m31") == [31.0, 32.0, 33.0]
    assert rollups(device, "m31", "1h") == [("2024-05-01T11:00:00.000Z", 3, 96.0, 31.0, 33.0, 32.0)]


def test_store_batches_stores_a_message_too_large_for_one_transaction_in_parts(
    transactions: list[int],
) -> None:
    # Given a message whose puts and rollup updates exceed a transaction: 500 readings ten
    # seconds apart span 84 minutes, so 84 minute buckets and 10-minute raw parts
    device = new_device()
    start = ms("2024-05-01T10:00:00+00:00")
    readings = [reading(start + i * 10_000, a=i) for i in range(500)]
    many = [batch(device, *readings[k : k + 4]) for k in range(0, 500, 4)]

    # When they are stored (125 messages: 125 puts and 84 + 2 + 1 rollup updates)
    report = store_batches(many)

    # Then all of it is stored, in several transactions none over the limit
    assert report.stored == 500
    assert len(transactions) > 1
    assert max(transactions) <= 100
    assert sum(p[1] for p in rollups(device, "a", "1m")) == 500
    assert [p[1] for p in rollups(device, "a", "1h")] == [360, 140]


def test_store_batches_message_stored_in_parts_is_a_duplicate_when_redelivered() -> None:
    device = new_device()
    store_batches([wide_message(device)])

    report = store_batches([wide_message(device)])

    assert (report.stored, report.duplicates) == (0, 3)
    assert rollups(device, "m0", "1d")[0][1] == 3


def test_store_batches_sets_raw_ttl_from_the_last_reading_and_retention() -> None:
    # Given a message whose last reading is at NOW
    device = new_device()

    # When it is stored with a 30-day retention
    store_batches([batch(device, reading(NOW - 5_000, a=1), reading(NOW, a=2))], retention_days=30)

    # Then each minute's fragment expires 30 days after its last reading
    assert [int(item.expires_at) for item in raw_items(device)] == [
        (NOW - 5_000) // 1000 + 30 * 86_400,
        NOW // 1000 + 30 * 86_400,
    ]


@pytest.mark.parametrize(
    ("resolution", "bucket", "days"),
    [
        ("1m", "2024-05-01T11:59:00", 30),
        ("1h", "2024-05-01T11:00:00", 400),
        ("1d", "2024-05-01T00:00:00", 1827),
    ],
)
def test_store_batches_sets_rollup_ttl_per_resolution(
    resolution: str, bucket: str, days: int
) -> None:
    device = new_device()

    store_batches([batch(device, reading(NOW - 1_000, a=1))])

    item = next(iter(RollupModel.query(f"ROLL#{device}#{resolution}")))
    assert int(item.expires_at) == ms(f"{bucket}+00:00") // 1000 + days * 86_400


def test_store_batches_reports_the_write_units_it_consumed() -> None:
    device = new_device()

    report = store_batches([batch(device, reading(NOW, a=1, b=2, c=3))])

    # One put and three rollup updates in a transaction (2 units each), one latest update;
    # it was 2 * (1 + 9) + 1 = 21 with one rollup item per metric
    assert report.estimated_write_units == 2 * (1 + 3) + 1
    assert report.write_units > 0
    assert report.read_units > 0


def test_store_batches_updates_three_rollup_items_for_a_three_metric_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a message of one reading with three metrics, and its transaction recorded
    device = new_device()
    recorded: list[list[dict[str, Any]]] = []
    real = models.client

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(real(), name)

        def transact_write_items(self, **kwargs: Any) -> Any:
            recorded.append(kwargs["TransactItems"])
            return real().transact_write_items(**kwargs)

    monkeypatch.setattr(models, "client", Recording)

    # When it is stored
    report = store_batches([batch(device, reading(NOW, temperature=21.5, humidity=40, p=1))])

    # Then its transaction holds one put and exactly three rollup updates, one per resolution
    [actions] = recorded
    updates = [action["Update"] for action in actions if "Update" in action]
    assert len(actions) == 4
    assert sorted(update["Key"]["pk"]["S"] for update in updates) == [
        f"ROLL#{device}#{resolution}" for resolution in ("1d", "1h", "1m")
    ]
    assert all(
        {"n_temperature", "s_humidity", "mn_p", "mx_p"}
        <= set(update["ExpressionAttributeNames"].values())
        for update in updates
    )
    # And the write units per reading dropped from the 21 of one rollup item per metric
    assert report.estimated_write_units == 9
    assert report.estimated_write_units < 21
    # And each metric reads back from the shared items
    assert rollups(device, "humidity", "1d") == [
        ("2024-05-01T00:00:00.000Z", 1, 40.0, 40.0, 40.0, 40.0)
    ]
    assert rollups(device, "temperature", "1m")[0][1:3] == (1, 21.5)


def test_query_readings_rollups_skip_buckets_without_the_metric() -> None:
    # Given two minutes, only the second of which holds metric b
    device = new_device()
    store_batches([batch(device, reading(NOW - 2 * MINUTE, a=1), reading(NOW - MINUTE, a=2, b=5))])

    # When each metric is queried by minute
    # Then a bucket where b has no count is not a point of b
    assert [p[:3] for p in rollups(device, "a", "1m")] == [
        ("2024-05-01T11:58:00.000Z", 1, 1.0),
        ("2024-05-01T11:59:00.000Z", 1, 2.0),
    ]
    assert [p[:3] for p in rollups(device, "b", "1m")] == [("2024-05-01T11:59:00.000Z", 1, 5.0)]
    assert rollups(device, "c", "1m") == []


def test_store_batches_keeps_metric_names_that_share_a_prefix_apart() -> None:
    # Given metrics whose names would collide if the attribute naming were careless
    device = new_device()
    store_batches([batch(device, reading(NOW, **{"n": 1, "n_n": 2, "mn": 3, "x.y-z": 4}))])

    # Then each reads back its own rollup
    assert [rollups(device, m, "1h")[0][2] for m in ("n", "n_n", "mn", "x.y-z")] == [
        1.0,
        2.0,
        3.0,
        4.0,
    ]


def test_store_batches_later_message_lowers_min_and_raises_max_of_several_metrics() -> None:
    # Given a bucket holding two metrics
    device = new_device()
    store_batches([batch(device, reading(NOW - 10_000, a=5, b=5))])

    # When a later message beats a's min and b's max, and leaves the others
    store_batches([batch(device, reading(NOW - 5_000, a=1, b=9))])

    # Then both extremes moved, and count and sum add up
    assert rollups(device, "a", "1m") == [("2024-05-01T11:59:00.000Z", 2, 6.0, 1.0, 5.0, 3.0)]
    assert rollups(device, "b", "1m") == [("2024-05-01T11:59:00.000Z", 2, 14.0, 5.0, 9.0, 7.0)]


def test_store_batches_rollup_update_expression_stays_under_4_kb_with_32_long_metrics() -> None:
    # Given the widest reading the contract allows
    metrics = {f"m{k:02d}" + "x" * 61: float(k) for k in range(32)}
    aggregates = rollup_items.aggregate([batch(new_device(), reading(NOW, **metrics))])

    # When its rollup update is built, then its expression is within DynamoDB's limit
    for key, per_metric in aggregates.items():
        update, _ = rollup_items.transact_update(key, per_metric)
        assert len(update["UpdateExpression"].encode()) < 4096


def test_store_batches_packing_keeps_a_50_reading_message_far_below_one_unit_a_reading() -> None:
    # Given a message of 50 readings of three metrics within one minute
    device = new_device()
    readings = [
        reading(NOW - 55_000 + i * 1_000, temperature=20 + i / 10, humidity=40 + i, pressure=1013.2)
        for i in range(50)
    ]

    # When it is stored
    report = store_batches([batch(device, *readings)])

    # Then it costs about half a write unit a reading, rollups and latest values included
    assert report.estimated_write_units / 50 < 0.6


# --- pagination and isolation ---------------------------------------------------------------


def test_query_readings_raw_pages_with_a_cursor_across_messages() -> None:
    # Given three messages of ten readings each
    device = new_device()
    store_batches(
        [
            batch(
                device,
                *(reading(NOW - 60_000 + m * 10_000 + i * 1_000, a=m * 10 + i) for i in range(10)),
            )
            for m in range(3)
        ]
    )

    # When they are read seven at a time
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        points, cursor = query_readings(
            device_id=device,
            metric="a",
            start_ms=NOW - MINUTE,
            end_ms=NOW,
            resolution="raw",
            limit=7,
            cursor=cursor,
        )
        pages.append(points)
        if cursor is None:
            break

    # Then the pages hold every reading once, in order
    assert [len(page) for page in pages] == [7, 7, 7, 7, 2]
    assert [p.value for page in pages for p in page] == [float(v) for v in range(30)]


def test_query_readings_rollups_page_with_a_cursor() -> None:
    # Given five minutes of readings
    device = new_device()
    store_batches([batch(device, *(reading(NOW - 5 * MINUTE + i * MINUTE, a=i) for i in range(5)))])

    # When minutes are read two at a time
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        points, cursor = query_readings(
            device_id=device,
            metric="a",
            start_ms=NOW - HOUR,
            end_ms=NOW,
            resolution="1m",
            limit=2,
            cursor=cursor,
        )
        pages.append(points)
        if cursor is None:
            break

    # Then each page continues where the previous one stopped
    assert [len(page) for page in pages] == [2, 2, 1]
    assert all(isinstance(p, RollupPoint) for page in pages for p in page)
    assert [p.sum for page in pages for p in page] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_query_readings_refuses_a_cursor_from_another_device() -> None:
    # Given a cursor from one device's readings
    device, other = new_device(), new_device()
    store_batches([batch(device, reading(NOW - 1_000, a=1), reading(NOW, a=2))])
    _, cursor = query_readings(
        device_id=device,
        metric="a",
        start_ms=NOW - MINUTE,
        end_ms=NOW,
        resolution="raw",
        limit=1,
        cursor=None,
    )

    # When it is used for another device, Then it is refused
    with pytest.raises(BadRequest):
        query_readings(
            device_id=other,
            metric="a",
            start_ms=NOW - MINUTE,
            end_ms=NOW,
            resolution="raw",
            limit=1,
            cursor=cursor,
        )


def test_query_readings_never_returns_another_devices_data() -> None:
    # Given two devices with the same metric
    mine, theirs = new_device(), new_device()
    store_batches(
        [
            batch(mine, reading(NOW - 1_000, a=1)),
            batch(theirs, reading(NOW - 1_000, a=100, secret=7), org="org-2"),
        ]
    )

    # When one device's data is read, Then none of the other's appears
    assert raw_values(mine, "a") == [1.0]
    assert [p[2] for p in rollups(mine, "a", "1h")] == [1.0]
    assert raw_values(mine, "secret") == []
    assert set(latest(mine)) == {"a"}


@pytest.mark.parametrize(
    ("metric", "start", "end", "resolution"),
    [("1bad", 0, NOW, "raw"), ("a", NOW, NOW - 1, "raw"), ("a", 0, NOW, "5m")],
    ids=["bad-metric", "start-after-end", "unknown-resolution"],
)
def test_query_readings_refuses_a_bad_query(
    metric: str, start: int, end: int, resolution: Any
) -> None:
    with pytest.raises(ValidationFailed):
        query_readings(
            device_id=new_device(),
            metric=metric,
            start_ms=start,
            end_ms=end,
            resolution=resolution,
            limit=None,
            cursor=None,
        )


# --- latest ---------------------------------------------------------------------------------


def test_latest_holds_the_newest_value_of_every_metric() -> None:
    # Given a message with two metrics, then a newer one with only one of them
    device = new_device()
    store_batches([batch(device, reading(NOW - 2_000, temperature=20, humidity=40))])
    store_batches([batch(device, reading(NOW - 1_000, temperature=21))])

    # When the latest values are read
    values = latest(device)

    # Then each metric has its own newest value and time
    assert values == {
        "humidity": LatestValue(ts="2024-05-01T11:59:58.000Z", value=40.0),
        "temperature": LatestValue(ts="2024-05-01T11:59:59.000Z", value=21.0),
    }


def test_latest_is_not_overwritten_by_an_older_batch_arriving_later() -> None:
    # Given the newer message stored first
    device = new_device()
    store_batches([batch(device, reading(NOW - 1_000, temperature=21))])

    # When an older one arrives
    store_batches([batch(device, reading(NOW - 5_000, temperature=19))])

    # Then the latest value stays the newer one
    assert latest(device) == {"temperature": LatestValue(ts="2024-05-01T11:59:59.000Z", value=21.0)}


def test_latest_skips_a_metric_only_an_older_late_batch_carries() -> None:
    # Given a newer message without pressure, then an older one with it (the accepted gap)
    device = new_device()
    store_batches([batch(device, reading(NOW - 1_000, temperature=21))])

    # When the older one arrives
    store_batches([batch(device, reading(NOW - 5_000, temperature=19, pressure=1013))])

    # Then pressure is not in the latest values, though its readings are stored
    assert set(latest(device)) == {"temperature"}
    assert raw_values(device, "pressure") == [1013.0]


def test_latest_of_a_device_without_data_is_empty() -> None:
    assert latest(new_device()) == {}


def test_store_batches_estimates_rollup_writes_from_the_stored_item_size() -> None:
    # Given buckets already holding 32 metrics with long names (items of several KB)
    device = new_device()
    wide = {f"m{k:02d}" + "x" * 61: float(k) for k in range(32)}
    store_batches([batch(device, reading(NOW - 10_000, **wide))])

    # When a message of one metric lands in the same buckets
    report = store_batches([batch(device, reading(NOW - 5_000, m00=1.0))])

    # Then its three rollup updates are charged at the stored items' size, not its own
    assert report.estimated_write_units > 2 * (1 + 3) + 1


def test_store_batches_moves_every_extreme_of_32_long_metrics() -> None:
    # Given a bucket holding 32 metrics with long names
    device = new_device()
    names = [f"m{k:02d}" + "x" * 61 for k in range(32)]
    store_batches([batch(device, reading(NOW - 10_000, **dict.fromkeys(names, 5.0)))])

    # When a later message beats both extremes of every metric
    store_batches(
        [
            batch(
                device,
                reading(NOW - 6_000, **dict.fromkeys(names, 1.0)),
                reading(NOW - 5_000, **dict.fromkeys(names, 9.0)),
            )
        ]
    )

    # Then every min and max moved
    for name in names:
        assert rollups(device, name, "1m") == [("2024-05-01T11:59:00.000Z", 3, 15.0, 1.0, 9.0, 5.0)]


def test_store_batches_extreme_beaten_since_the_read_falls_back_to_one_update_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a bucket where a spans 1 to 9 and b is 5
    device = new_device()
    store_batches([batch(device, reading(NOW - 10_000, a=1, b=5), reading(NOW - 9_000, a=9))])

    # When a message's read sees nothing stored (as if it raced a concurrent writer), so its
    # one update per item fails the condition for a's extremes
    monkeypatch.setattr(store, "_read_items", lambda keys, meter: {})
    store_batches([batch(device, reading(NOW - 5_000, a=5, b=0))])

    # Then only what it really beats moved: b's min, tried alone
    assert rollups(device, "a", "1m") == [("2024-05-01T11:59:00.000Z", 3, 15.0, 1.0, 9.0, 5.0)]
    assert rollups(device, "b", "1m") == [("2024-05-01T11:59:00.000Z", 2, 5.0, 0.0, 5.0, 2.5)]


# --- identity per reading (ADR 26) ---------------------------------------------------------


def window(device: str, first: int, last: int, step: int = 20_000) -> Batch:
    """Readings first..last of a device, `step` ms apart from NOW - 100 s, value = number."""
    return batch(device, *(reading(NOW - 100_000 + i * step, a=i) for i in range(first, last + 1)))


def minute_counts(device: str, metric: str = "a") -> list[tuple[str, int, float]]:
    return [(p[0], p[1], p[2]) for p in rollups(device, metric, "1m")]


def test_store_batches_overlapping_resend_stores_each_reading_once() -> None:
    # Given readings 0-4 stored (11:58:20 to 11:59:40, 20 s apart)
    device = new_device()
    first = store_batches([window(device, 0, 4)])

    # When the device resends an overlapping window, 0-5
    again = store_batches([window(device, 0, 5)])

    # Then 6 readings are stored, once each, and the rollups count 6
    assert (first.stored, first.duplicates) == (5, 0)
    assert (again.stored, again.duplicates, again.conflicts) == (1, 5, ())
    assert raw_values(device, "a") == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert minute_counts(device) == [
        ("2024-05-01T11:58:00.000Z", 2, 1.0),
        ("2024-05-01T11:59:00.000Z", 3, 9.0),
        ("2024-05-01T12:00:00.000Z", 1, 5.0),
    ]
    assert rollups(device, "a", "1d")[0][1:3] == (6, 15.0)


def test_store_batches_resend_writes_only_what_is_new(transactions: list[int]) -> None:
    # Given readings 0-4 stored, within one minute
    device = new_device()
    store_batches([window(device, 0, 4, step=5_000)])
    transactions.clear()

    # When the same window comes back, and then one with a new reading
    unchanged = store_batches([window(device, 0, 4, step=5_000)])
    grown = store_batches([window(device, 0, 5, step=5_000)])

    # Then the repeat writes nothing, and the grown one a fragment holding only reading 5:
    # its put and three rollup updates in the transaction, the latest values, and the new
    # maximum of the minute, the hour and the day
    assert unchanged.estimated_write_units == 0
    assert transactions == [1 + 3]
    assert grown.estimated_write_units == 2 * (1 + 3) + 1 + 3
    assert [(item.sk, int(item.n)) for item in raw_items(device)] == [
        ("2024-05-01T11:58:00.000Z#s000000", 5),
        ("2024-05-01T11:58:00.000Z#s000001", 1),
    ]
    assert raw_items(device)[1].r == f'[[{NOW - 75_000},{{"a":5}}]]'


def test_store_batches_duplicates_inside_one_batch_store_and_count_once() -> None:
    # Given one message holding a reading twice, and a second reading
    device = new_device()
    message = batch(device, reading(NOW - 2_000, a=1), reading(NOW - 2_000, a=1), reading(NOW, a=2))

    # When it is stored
    report = store_batches([message])

    # Then each reading is stored and counted once
    assert (report.stored, report.duplicates) == (2, 1)
    assert raw_values(device, "a") == [1.0, 2.0]
    assert rollups(device, "a", "1d")[0][1:3] == (2, 3.0)


def test_store_batches_messages_with_other_boundaries_in_one_call_count_once() -> None:
    # Given two messages of one call that overlap: readings 0-2 and 1-4
    device = new_device()

    # When they are stored together
    report = store_batches([window(device, 0, 2), window(device, 1, 4)])

    # Then five readings are stored and the two repeated ones are duplicates
    assert (report.stored, report.duplicates) == (5, 2)
    assert raw_values(device, "a") == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert rollups(device, "a", "1h")[0][1:3] == (5, 10.0)


def test_store_batches_same_instant_with_other_metrics_adds_them() -> None:
    # Given a reading of a at an instant
    device = new_device()
    store_batches([batch(device, reading(NOW, a=1))])

    # When the same instant comes with a again and a new metric b
    report = store_batches([batch(device, reading(NOW, a=1, b=2))])

    # Then b is stored, a is not stored twice, and nothing is refused
    assert (report.stored, report.duplicates, report.conflicts) == (1, 0, ())
    assert raw_values(device, "a") == [1.0]
    assert raw_values(device, "b") == [2.0]
    assert [rollups(device, m, "1m")[0][1] for m in ("a", "b")] == [1, 1]


def test_store_batches_conflicting_value_is_refused_and_reported() -> None:
    # Given temperature 21.5 stored at an instant
    device = new_device()
    store_batches([batch(device, reading(NOW - 1_000, temperature=21.5))])
    before = rollups(device, "temperature", "1m")

    # When the same instant comes again with 22 (and a new reading beside it)
    report = store_batches(
        [batch(device, reading(NOW - 1_000, temperature=22), reading(NOW, temperature=23))]
    )

    # Then 22 is refused with a reason, the stored value stays, and the rollup counts only 23
    assert (report.stored, report.duplicates) == (1, 0)
    [conflict] = report.conflicts
    assert (conflict.batch, conflict.reading, conflict.metric) == (0, 0, "temperature")
    assert (conflict.value, conflict.stored) == (22.0, 21.5)
    assert conflict.reason == (
        "metric 'temperature' at 2024-05-01T11:59:59.000Z already holds 21.5; 22 was not stored"
    )
    assert raw_values(device, "temperature") == [21.5, 23.0]
    assert before[0][1:3] == (1, 21.5)
    assert rollups(device, "temperature", "1m") == [
        ("2024-05-01T11:59:00.000Z", 1, 21.5, 21.5, 21.5, 21.5),
        ("2024-05-01T12:00:00.000Z", 1, 23.0, 23.0, 23.0, 23.0),
    ]
    assert latest(device)["temperature"].value == 23.0


def test_store_batches_conflict_inside_one_call_keeps_the_first_value() -> None:
    # Given one message with two values for one instant, and another message repeating the first
    device = new_device()
    report = store_batches(
        [
            batch(device, reading(NOW, a=1), reading(NOW, a=2)),
            batch(device, reading(NOW, a=1)),
        ]
    )

    # Then the first value is stored once, its repeat is a duplicate, the other is refused
    assert (report.stored, report.duplicates) == (1, 1)
    assert [(c.batch, c.reading, c.value, c.stored) for c in report.conflicts] == [(0, 1, 2.0, 1.0)]
    assert raw_values(device, "a") == [1.0]
    assert rollups(device, "a", "1m")[0][1:3] == (1, 1.0)
    assert latest(device)["a"].value == 1.0


def test_store_batches_sent_value_matching_the_stored_one_is_a_duplicate_beside_a_conflict() -> (
    None
):
    # Given a = 1 stored at an instant
    device = new_device()
    store_batches([batch(device, reading(NOW, a=1))])

    # When one call sends 2, then 1, for it
    report = store_batches([batch(device, reading(NOW, a=2)), batch(device, reading(NOW, a=1))])

    # Then 2 is refused against the stored 1, and 1 is a duplicate
    assert (report.stored, report.duplicates) == (0, 1)
    assert [(c.batch, c.value, c.stored) for c in report.conflicts] == [(0, 2.0, 1.0)]
    assert rollups(device, "a", "1m")[0][1:3] == (1, 1.0)


def test_without_conflicts_drops_only_the_refused_values() -> None:
    # Given a stored value, and a batch that conflicts with it in one of two metrics
    device = new_device()
    store_batches([batch(device, reading(NOW, a=1))])
    sent = [batch(device, reading(NOW, a=9, b=2), reading(NOW - 1_000, a=3))]
    report = store_batches(sent)

    # When the refused values are taken out (for alerts and the live stream)
    kept = store.without_conflicts(sent, report)

    # Then b and the other reading stay
    assert kept == [batch(device, reading(NOW, b=2), reading(NOW - 1_000, a=3))]
    assert store.without_conflicts(sent, store_batches(sent)) == kept


class Interleaving:
    """A client whose first TransactWriteItems first lets another writer store its batches:
    the writer under test has read its slots, and they change before it commits."""

    def __init__(self, real: Callable[[], Any], other: list[Batch]) -> None:
        self.real, self.other = real, other
        self.transactions: list[list[str]] = []

    def __call__(self) -> Interleaving:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        puts = [a["Put"]["Item"]["sk"]["S"] for a in kwargs["TransactItems"] if "Put" in a]
        self.transactions.append(puts)
        if self.other:
            other, self.other = self.other, []
            store_batches(other)
        return self.real().transact_write_items(**kwargs)


def test_store_batches_concurrent_writer_of_the_same_slot_makes_it_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a writer of readings 0-4 that another writer of readings 2-6 (the same minute)
    # overtakes between its read and its commit
    device = new_device()
    mine, theirs = window(device, 0, 4, step=5_000), window(device, 2, 6, step=5_000)
    client = Interleaving(models.client, [theirs])
    monkeypatch.setattr(models, "client", client)

    # When the first writer stores its readings
    report = store_batches([mine])

    # Then its put of fragment 0 fails, it reads again and puts only 0 and 1 as fragment 1
    assert client.transactions[0] == ["2024-05-01T11:58:00.000Z#s000000"]
    assert client.transactions[-1] == ["2024-05-01T11:58:00.000Z#s000001"]
    assert (report.stored, report.duplicates) == (2, 3)
    # And every reading is stored once and counted once
    assert raw_values(device, "a") == [2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 1.0]
    assert sorted(raw_values(device, "a")) == [float(i) for i in range(7)]
    assert rollups(device, "a", "1m") == [("2024-05-01T11:58:00.000Z", 7, 21.0, 0.0, 6.0, 3.0)]


def test_store_batches_concurrent_writer_with_another_value_wins_the_instant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a writer of a = 1 overtaken by a writer of a = 2 at the same instant
    device = new_device()
    monkeypatch.setattr(
        models, "client", Interleaving(models.client, [batch(device, reading(NOW, a=2))])
    )

    # When the first writer stores its reading
    report = store_batches([batch(device, reading(NOW, a=1))])

    # Then the value committed first stays, and the late one is reported
    assert report.stored == 0
    assert [(c.value, c.stored) for c in report.conflicts] == [(1.0, 2.0)]
    assert raw_values(device, "a") == [2.0]
    assert rollups(device, "a", "1m")[0][1:3] == (1, 2.0)


def test_store_batches_gives_up_when_the_slot_keeps_moving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a slot that holds fragment 0, and a writer whose every read misses it
    device = new_device()
    store_batches([batch(device, reading(NOW, a=1))])
    monkeypatch.setattr(
        store,
        "_read_slots",
        lambda chunk, meter: {s.key: store._Stored(values={}, next_seq=0) for s in chunk},
    )

    # When it stores a new reading in that slot, Then it raises after its attempts (the
    # caller's message is retried), and nothing was counted
    with pytest.raises(ClientError):
        store_batches([batch(device, reading(NOW + 1_000, a=5))])
    assert rollups(device, "a", "1m")[0][1:3] == (1, 1.0)


def test_store_batches_reads_items_of_the_layout_before_slots() -> None:
    # Given an item of the layout before ADR 26 (one per message, keyed by its first reading)
    device = new_device()
    RawReadingsModel(
        f"RAW#{device}",
        models.raw_sort_key(NOW - 30_000, "0123456789abcdef"),
        r=f'[[{NOW - 30_000},{{"a":1}}],[{NOW - 20_000},{{"a":2}}]]',
        n=2,
        last_ms=NOW - 20_000,
        org_id="org-1",
        expires_at=NOW // 1000 + 86_400,
    ).save()

    # When the device resends one of its readings with a new one
    report = store_batches([batch(device, reading(NOW - 20_000, a=2), reading(NOW - 10_000, a=3))])

    # Then the old item is read as before, and its reading counts as stored (items come in key
    # order: the minute's fragment sorts before an item keyed by a reading in that minute)
    assert (report.stored, report.duplicates) == (1, 1)
    assert raw_values(device, "a") == [3.0, 1.0, 2.0]
