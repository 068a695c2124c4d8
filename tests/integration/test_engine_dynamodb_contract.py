"""Contract with the local engine's DynamoDB TTL, streams and stream event source mappings:
what the raw telemetry archive (ADR 14) relies on, and the gaps Kumo works around.

On AWS, DynamoDB's TTL deletes an expired item within days and writes a stream REMOVE record
marked `userIdentity: {type: Service, principalId: dynamodb.amazonaws.com}`; Lambda reads
the stream through an event source mapping that applies FilterCriteria, honours partial
batch responses (ReportBatchItemFailures) and retries failed batches.

Each test makes its own table (and function) with unique names and deletes them. A
`test_gap_*` test pins a MiniStack difference from AWS: when one starts failing, the engine
has caught up; drop the workaround and the test together.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

import pytest

from infra.template import template
from tests.integration.conftest import recorded, unique_name

# MiniStack's TTL sweep runs once a minute; two sweeps and some slack.
TTL_DEADLINE_SECONDS = 150.0
DELIVERY_DEADLINE_SECONDS = 20.0


def _create_table(aws: Callable[[str], Any], *, view: str = "NEW_AND_OLD_IMAGES") -> str:
    name = unique_name("kumo-ddb-contract")
    dynamodb = aws("dynamodb")
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view},
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    return name


@pytest.fixture
def make_table(aws: Callable[[str], Any]) -> Iterator[Callable[[], str]]:
    created: list[str] = []

    def make() -> str:
        created.append(_create_table(aws))
        return created[-1]

    yield make
    for name in created:
        with suppress(Exception):
            aws("dynamodb").delete_table(TableName=name)


def _stream_records(aws: Callable[[str], Any], table: str) -> list[dict[str, Any]]:
    arn = aws("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = aws("dynamodbstreams")
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            records.extend(page["Records"])
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


def _item(pk: str, sk: str, expires_at: int, **extra: str) -> dict[str, Any]:
    return {
        "pk": {"S": pk},
        "sk": {"S": sk},
        "expires_at": {"N": str(expires_at)},
        **{name: {"S": value} for name, value in extra.items()},
    }


# --- (a), (b): the TTL sweep and what it writes to the stream ----------------------------------


@pytest.fixture(scope="module")
def swept(aws: Callable[[str], Any]) -> Iterator[dict[str, Any]]:
    """A table with an expired raw item and a live one, after the engine's TTL sweep took
    the expired one (one wait shared by the tests that look at the outcome)."""
    table = _create_table(aws, view="OLD_IMAGE")
    dynamodb = aws("dynamodb")
    now = int(time.time())
    dynamodb.put_item(TableName=table, Item=_item("RAW#dev", "expired", now - 60))
    dynamodb.put_item(TableName=table, Item=_item("RAW#dev", "live", now + 86_400))
    started = time.monotonic()
    deadline = started + TTL_DEADLINE_SECONDS
    expired_key = {"pk": {"S": "RAW#dev"}, "sk": {"S": "expired"}}
    while time.monotonic() < deadline:
        if "Item" not in dynamodb.get_item(TableName=table, Key=expired_key):
            break
        time.sleep(1)
    else:
        pytest.fail(f"the engine did not delete an expired item in {TTL_DEADLINE_SECONDS} s")
    elapsed = time.monotonic() - started
    print(f"TTL sweep deleted the expired item after {elapsed:.1f} s")
    yield {"table": table, "elapsed": elapsed}
    with suppress(Exception):
        dynamodb.delete_table(TableName=table)


def test_ttl_sweep_deletes_expired_items_and_keeps_live_ones(
    aws: Callable[[str], Any], swept: dict[str, Any]
) -> None:
    # The fixture waited for the expired item to go; the live one stays.
    live = aws("dynamodb").get_item(
        TableName=swept["table"], Key={"pk": {"S": "RAW#dev"}, "sk": {"S": "live"}}
    )
    assert "Item" in live
    assert swept["elapsed"] < TTL_DEADLINE_SECONDS


def test_gap_ttl_deletion_writes_no_stream_record(
    aws: Callable[[str], Any], swept: dict[str, Any]
) -> None:
    # AWS: a REMOVE record with the old image and userIdentity Service /
    # dynamodb.amazonaws.com. MiniStack 1.5.33's sweep deletes the item without touching the
    # stream, so nothing reaches ArchiveTelemetryFunction locally (ADR 14).
    events = [record["eventName"] for record in _stream_records(aws, swept["table"])]
    assert events == ["INSERT", "INSERT"]


def test_user_delete_writes_remove_record_with_old_image_and_no_identity(
    aws: Callable[[str], Any], make_table: Callable[[], str]
) -> None:
    # Given an item in a table with an OLD_IMAGE stream
    table = make_table()
    dynamodb = aws("dynamodb")
    dynamodb.put_item(TableName=table, Item=_item("RAW#dev", "a", 2_000_000_000, r="[]"))

    # When a user deletes it
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": "RAW#dev"}, "sk": {"S": "a"}})

    # Then the stream has its REMOVE with the old image and no userIdentity (as on AWS,
    # where only TTL's removals carry one): the archive filter tells the two apart
    removal = _stream_records(aws, table)[-1]
    assert removal["eventName"] == "REMOVE"
    assert removal["dynamodb"]["OldImage"]["r"] == {"S": "[]"}
    assert "userIdentity" not in removal


# --- (c), (d): stream event source mappings --------------------------------------------------


def _map(
    aws: Callable[[str], Any], table: str, function: str, pattern: dict[str, Any] | None
) -> None:
    arn = aws("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    extra: dict[str, Any] = {}
    if pattern is not None:
        extra["FilterCriteria"] = {"Filters": [{"Pattern": json.dumps(pattern)}]}
    aws("lambda").create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=function,
        StartingPosition="TRIM_HORIZON",
        BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        **extra,
    )


def _archive_filter() -> dict[str, Any]:
    """The archive mapping's filter as template.yaml declares it."""
    function = template()["Resources"]["ArchiveTelemetryFunction"]["Properties"]
    pattern: dict[str, Any] = json.loads(
        function["Events"]["Expired"]["Properties"]["FilterCriteria"]["Filters"][0]["Pattern"]
    )
    return pattern


def test_stream_mapping_applies_filter_criteria(
    aws: Callable[[str], Any], make_table: Callable[[], str], recorder: dict[str, str]
) -> None:
    # Given a mapping that passes removals of RAW# items only (the archive's filter without
    # its userIdentity clause, which no MiniStack record could match)
    table = make_table()
    pattern = _archive_filter()
    del pattern["userIdentity"]
    _map(aws, table, recorder["function"], pattern)
    dynamodb = aws("dynamodb")

    # When a raw item and a rollup are written and deleted
    for pk in ("RAW#dev", "ROLL#dev#1m"):
        dynamodb.put_item(TableName=table, Item=_item(pk, "a", 2_000_000_000))
        dynamodb.delete_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "a"}})

    # Then the function is given exactly the raw item's removal
    lines = recorded(aws, recorder["queue_url"], at_least=2, seconds=DELIVERY_DEADLINE_SECONDS)
    assert lines == [{"event": "REMOVE", "pk": "RAW#dev", "identity": None}]


def test_archive_filter_passes_no_user_delete(
    aws: Callable[[str], Any], make_table: Callable[[], str], recorder: dict[str, str]
) -> None:
    # Given a mapping with the archive's full filter, and beside it a probe mapping to the
    # same function that passes a marker item's inserts only
    table = make_table()
    _map(aws, table, recorder["function"], _archive_filter())
    _map(aws, table, recorder["function"], {"dynamodb": {"Keys": {"pk": {"S": ["MARK#dev"]}}}})
    dynamodb = aws("dynamodb")

    # When a user deletes a raw item
    dynamodb.put_item(TableName=table, Item=_item("RAW#dev", "a", 2_000_000_000))
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": "RAW#dev"}, "sk": {"S": "a"}})

    # And a marker is written after it, and another once the probe was given the first: the
    # engine's one poller offers each record to every mapping in turn and runs a function
    # before it moves on, so by the second marker the archive filter has judged the delete
    lines: list[dict[str, Any]] = []
    for count in (1, 2):
        dynamodb.put_item(TableName=table, Item=_item("MARK#dev", f"m{count}", 2_000_000_000))
        deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
        while sum(line["pk"] == "MARK#dev" for line in lines) < count:
            assert time.monotonic() < deadline, f"the probe was not given marker {count}"
            lines += recorded(aws, recorder["queue_url"], at_least=1, seconds=1)

    # Then only the markers reached the function (on AWS too: a user's delete has no
    # userIdentity)
    assert lines == [{"event": "INSERT", "pk": "MARK#dev", "identity": None}] * 2


def test_stream_mapping_retries_a_failed_batch(
    aws: Callable[[str], Any], make_table: Callable[[], str], recorder: dict[str, str]
) -> None:
    # Given a mapping and an item whose record makes the function raise
    table = make_table()
    _map(aws, table, recorder["function"], None)

    # When the item is written
    aws("dynamodb").put_item(
        TableName=table, Item=_item("RAW#dev", "a", 2_000_000_000, mode="fail")
    )

    # Then the batch is given again: what the archive's whole-batch failure relies on locally
    lines = recorded(aws, recorder["queue_url"], at_least=2, seconds=DELIVERY_DEADLINE_SECONDS)
    assert len(lines) >= 2
    assert {line["pk"] for line in lines} == {"RAW#dev"}


def test_gap_stream_mapping_ignores_partial_batch_response(
    aws: Callable[[str], Any], make_table: Callable[[], str], recorder: dict[str, str]
) -> None:
    # Given a mapping with ReportBatchItemFailures and an item whose record the function
    # reports failed
    table = make_table()
    _map(aws, table, recorder["function"], None)

    # When the item is written
    aws("dynamodb").put_item(
        TableName=table, Item=_item("RAW#dev", "a", 2_000_000_000, mode="partial")
    )

    # Then AWS would give the record again (the stream resumes at the failed record);
    # MiniStack 1.5.33 moves past it, so the local stack sets StreamPartialBatchResponses
    # to false and the archive raises instead (ADR 14)
    first = recorded(aws, recorder["queue_url"], at_least=1, seconds=DELIVERY_DEADLINE_SECONDS)
    assert len(first) == 1

    # And the next record the function is given is that of an item written after it: on AWS
    # the failed record would come first again
    aws("dynamodb").put_item(TableName=table, Item=_item("RAW#next", "b", 2_000_000_000))
    after = recorded(aws, recorder["queue_url"], at_least=1, seconds=DELIVERY_DEADLINE_SECONDS)
    assert after == [{"event": "INSERT", "pk": "RAW#next", "identity": None}]
