"""Telemetry under faults, on the real local stack (issue 10, ADR 26): devices resend
overlapping windows with other boundaries, retry after a lost acknowledgement, repeat a reading
inside a batch, and SQS delivers a message twice; over HTTP, MQTT and the queue itself, every
reading is stored once (0 lost, 0 duplicated) and the rollups count and sum it exactly once.

KUMO_FAULT_READINGS sets the readings each test sends (default 2,000; 10,000 was run too),
not counting the copies: one device's for HTTP, MQTT and the queue, split over four devices
for the timeout. Each wait is bounded by a deadline, and the counts are read once the
telemetry queue holds nothing visible or in flight, so no late copy can arrive after them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.integration.conftest import Api, Outbox, signed_up_user

READINGS = int(os.environ.get("KUMO_FAULT_READINGS", "2000"))
WINDOW = 50  # readings a message
STEP = 40  # a window starts this many readings after the previous one: 10 overlap
SPACING_MS = 100
DRAIN_SECONDS = 300.0
# The timeout test's devices: a batch of ten messages then spans several of them, so several
# transactions, and a timeout can fall between two.
TIMEOUT_DEVICES = 4
# How often the timeout test queues its windows again while no batch has outlasted 1 s, and how
# long it waits for one each time.
TIMEOUT_ROUNDS = 4
TIMEOUT_ROUND_SECONDS = 45


@pytest.fixture(scope="module")
def fleet(api: Api, outbox: Outbox) -> dict[str, Any]:
    owner = signed_up_user(api, outbox, "faults")
    token = owner["access_token"]
    org_id = api.post("/api/v1/orgs", token=token, json={"name": "Faults"}).json()["id"]
    devices = {}
    for name in ("http", "mqtt", "queue", *(f"timeout-{n}" for n in range(TIMEOUT_DEVICES))):
        created = api.post(
            "/api/v1/devices", token=token, json={"org_id": org_id, "name": f"faults-{name}"}
        )
        assert created.status_code == 201, created.text
        devices[name] = created.json()
    return {"token": token, "org_id": org_id, "devices": devices}


def windows(count: int) -> Iterator[tuple[int, int]]:
    """[first, last) of each message: WINDOW readings, each window overlapping the last."""
    first = 0
    while True:
        yield first, min(first + WINDOW, count)
        if first + WINDOW >= count:
            return
        first += STEP


def reading(base_ms: int, seq: int) -> dict[str, Any]:
    return {"ts": base_ms + seq * SPACING_MS, "metrics": {"seq": seq, "half": seq / 2}}


def message(base_ms: int, first: int, last: int) -> dict[str, Any]:
    """A window, its first reading repeated at the end (a duplicate inside the batch)."""
    readings = [reading(base_ms, seq) for seq in range(first, last)]
    return {"readings": [*readings, readings[0]]}


def base_time() -> int:
    # Every reading in the past (the contract allows 7 days back, 5 minutes ahead).
    return int(time.time() * 1000) - 30 * 60_000 - READINGS * SPACING_MS


def stored_seqs(api: Api, token: str, device_id: str, base_ms: int, count: int) -> list[float]:
    """Every raw `seq` value of the device over the test's range, paging through."""
    values: list[float] = []
    cursor: str | None = None
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        params: dict[str, Any] = {
            "metric": "seq",
            "from": base_ms,
            "to": base_ms + count * SPACING_MS,
            "limit": 100,
        }
        if cursor:
            params["cursor"] = cursor
        page = api.get(f"/api/v1/devices/{device_id}/readings", token=token, params=params)
        assert page.status_code == 200, page.text
        values += [point["value"] for point in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return values
    raise AssertionError("the raw readings could not be paged through in time")


def hourly(
    api: Api, token: str, device_id: str, metric: str, base_ms: int, count: int
) -> tuple[int, float]:
    """The count and sum of a metric over the test's range, from the hourly rollups."""
    answer = api.get(
        f"/api/v1/devices/{device_id}/readings",
        token=token,
        params={
            "metric": metric,
            "from": base_ms,
            "to": base_ms + count * SPACING_MS,
            "resolution": "1h",
        },
    )
    assert answer.status_code == 200, answer.text
    points = answer.json()["items"]
    return sum(p["count"] for p in points), sum(p["sum"] for p in points)


def assert_each_reading_once(
    api: Api, token: str, device_id: str, base_ms: int, count: int = READINGS
) -> None:
    seqs = stored_seqs(api, token, device_id, base_ms, count)
    assert len(seqs) == count, f"{len(seqs)} raw readings for {count} sent"
    assert len(set(seqs)) == count, "a reading is stored twice"
    assert sorted(seqs) == [float(seq) for seq in range(count)]
    total = count * (count - 1) // 2
    assert hourly(api, token, device_id, "seq", base_ms, count) == (count, float(total))
    assert hourly(api, token, device_id, "half", base_ms, count) == (count, total / 2)


def wait_for_count(
    api: Api, token: str, device_id: str, base_ms: int, count: int = READINGS
) -> None:
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        stored, _ = hourly(api, token, device_id, "seq", base_ms, count)
        if stored >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"fewer than {count} readings stored within {DRAIN_SECONDS} s")


def telemetry_queue(aws: Callable[[str], Any], endpoints: dict[str, Any]) -> str:
    url: str = aws("sqs").get_queue_url(QueueName=f"kumo-{endpoints['stage']}-telemetry")[
        "QueueUrl"
    ]
    return url


def rule_message(fleet: dict[str, Any], device_id: str, body: dict[str, Any]) -> str:
    """What the IoT topic rule queues for a device's message."""
    envelope = {"org_id": fleet["org_id"], "device_id": device_id}
    return json.dumps({**body, **envelope, "received_at": int(time.time() * 1000)})


def queue_all(sqs: Any, url: str, entries: list[dict[str, str]]) -> None:
    for start in range(0, len(entries), 10):
        sent = sqs.send_message_batch(QueueUrl=url, Entries=entries[start : start + 10])
        assert not sent.get("Failed"), sent


def wait_for_drained_queue(aws: Callable[[str], Any], endpoints: dict[str, Any]) -> None:
    """Until the telemetry queue holds nothing, visible or in flight: every delivery,
    redeliveries included, has been handled, so the counts read after it are final."""
    sqs, url = aws("sqs"), telemetry_queue(aws, endpoints)
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if all(int(value) == 0 for value in attributes.values()):
            return
        time.sleep(0.5)
    raise AssertionError(f"the telemetry queue did not drain within {DRAIN_SECONDS} s")


def test_http_resends_and_retries_store_every_reading_once(api: Api, fleet: dict[str, Any]) -> None:
    # Given a device posting overlapping windows, each with a reading repeated inside it, and
    # every seventh window posted twice (a retry after a lost acknowledgement)
    device, token = fleet["devices"]["http"], fleet["token"]
    base_ms = base_time()
    accepted = duplicates = sent = 0
    for index, (first, last) in enumerate(windows(READINGS)):
        body = message(base_ms, first, last)
        for _ in range(2 if index % 7 == 0 else 1):
            answer = api.post("/api/v1/device/readings", token=device["api_key"], json=body)
            assert answer.status_code == 202, answer.text
            assert answer.json()["rejected"] == []
            accepted += answer.json()["accepted"]
            duplicates += answer.json()["duplicates"]
            sent += len(body["readings"])

    # When the device then sends a value that contradicts a stored one
    conflicting = {"ts": base_ms + 5 * SPACING_MS, "metrics": {"seq": -5, "half": 2.5}}
    answer = api.post("/api/v1/device/readings", token=device["api_key"], json=conflicting)

    # Then the contradiction is refused with a reason, and only that value
    assert answer.status_code == 202, answer.text
    assert (answer.json()["accepted"], answer.json()["duplicates"]) == (0, 0)
    [refused] = answer.json()["rejected"]
    assert refused["index"] == 0
    assert refused["reason"].startswith("conflicting value: metric 'seq' at ")
    assert refused["reason"].endswith("already holds 5; -5 was not stored")
    # And the answers counted each reading accepted once, the rest as duplicates
    assert (accepted, duplicates) == (READINGS, sent - READINGS)
    # And every reading is stored once, its rollups counting it once
    assert_each_reading_once(api, token, device["id"], base_ms)


def test_mqtt_resends_and_repeated_publishes_store_every_reading_once(
    api: Api,
    fleet: dict[str, Any],
    mqtt_client: mqtt.Client,
    aws: Callable[[str], Any],
    endpoints: dict[str, Any],
) -> None:
    # Given a device publishing overlapping windows over MQTT, each with a reading repeated
    # inside it, every fifth window published twice, then its last 75 readings once more with
    # other boundaries, and a value that contradicts a stored one
    device, token = fleet["devices"]["mqtt"], fleet["token"]
    topic = f"kumo/{fleet['org_id']}/{device['id']}/telemetry"
    base_ms = base_time()
    bodies = []
    for index, (first, last) in enumerate(windows(READINGS)):
        bodies += [message(base_ms, first, last)] * (2 if index % 5 == 0 else 1)
    bodies.append(message(base_ms, READINGS - 75, READINGS))
    bodies.append({"ts": base_ms + 7 * SPACING_MS, "metrics": {"seq": -7}})

    # When they are published (QoS 1) and the ingestion has handled every delivery
    for body in bodies:
        mqtt_client.publish(topic, json.dumps(body), qos=1).wait_for_publish(timeout=10)
    wait_for_count(api, token, device["id"], base_ms)
    wait_for_drained_queue(aws, endpoints)

    # Then every reading is stored once and counted once; the contradiction is not stored
    assert_each_reading_once(api, token, device["id"], base_ms)


def test_sqs_delivering_a_message_twice_stores_it_once(
    api: Api, fleet: dict[str, Any], aws: Callable[[str], Any], endpoints: dict[str, Any]
) -> None:
    # Given the messages the IoT rule would queue for a device's overlapping windows, every
    # one of them queued twice (SQS delivers at least once), some twice in one batch
    device, token = fleet["devices"]["queue"], fleet["token"]
    sqs, url = aws("sqs"), telemetry_queue(aws, endpoints)
    base_ms = base_time()
    entries = []
    for first, last in windows(READINGS):
        body = rule_message(fleet, device["id"], message(base_ms, first, last))
        entries += [{"Id": f"w{first}a", "MessageBody": body}]
        entries += [{"Id": f"w{first}b", "MessageBody": body}]

    # When they are sent and handled
    queue_all(sqs, url, entries)
    wait_for_count(api, token, device["id"], base_ms)
    wait_for_drained_queue(aws, endpoints)

    # Then every reading is stored once and counted once
    assert_each_reading_once(api, token, device["id"], base_ms)


def timed_out_invocations(aws: Callable[[str], Any], function: str, since_ms: int) -> int:
    """Invocations of the function that the engine stopped at its timeout since then, from the
    function's log ("Task timed out after ...", as Lambda writes it)."""
    logs = aws("logs")
    try:
        found = logs.filter_log_events(
            logGroupName=f"/aws/lambda/{function}", startTime=since_ms, filterPattern="timed out"
        )
    except logs.exceptions.ResourceNotFoundException:
        return 0
    return sum("Task timed out" in event["message"] for event in found["events"])


def timed_out_within(
    aws: Callable[[str], Any], function: str, since_ms: int, seconds: float
) -> bool:
    """Whether an invocation since then times out within `seconds` from now."""
    deadline = time.monotonic() + seconds
    while not timed_out_invocations(aws, function, since_ms):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
    return True


def test_ingestion_timing_out_mid_batch_loses_and_duplicates_nothing(
    api: Api, fleet: dict[str, Any], aws: Callable[[str], Any], endpoints: dict[str, Any]
) -> None:
    # Given the ingestion function with a timeout shorter than a batch takes, and a queue that
    # hands a message out again 5 s after a failed receive (not 180 s)
    lam, sqs = aws("lambda"), aws("sqs")
    function = f"kumo-{endpoints['stage']}-ingest_telemetry"
    url = telemetry_queue(aws, endpoints)
    timeout = lam.get_function_configuration(FunctionName=function)["Timeout"]
    visibility = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])[
        "Attributes"
    ]["VisibilityTimeout"]
    devices = [fleet["devices"][f"timeout-{n}"] for n in range(TIMEOUT_DEVICES)]
    count = READINGS // TIMEOUT_DEVICES  # readings a device: READINGS in all
    base_ms = base_time()
    # The devices' overlapping windows, interleaved so that every batch spans several devices,
    # and each of them queued twice
    entries = []
    for first, last in windows(count):
        for device in devices:
            body = rule_message(fleet, device["id"], message(base_ms, first, last))
            entries += [
                {"Id": f"{device['id'][-6:]}{first}{copy}", "MessageBody": body} for copy in "ab"
            ]
    started_ms = int(time.time() * 1000)
    try:
        lam.update_function_configuration(FunctionName=function, Timeout=1)
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5"})

        # When they are queued, and the function times out mid-batch at least once. Whether a
        # batch outlasts 1 s depends on the machine: on a quick one the windows are queued again
        # (the same readings: more resends), until one does, at most TIMEOUT_ROUNDS times.
        for _round in range(TIMEOUT_ROUNDS):
            queue_all(sqs, url, entries)
            if timed_out_within(aws, function, started_ms, TIMEOUT_ROUND_SECONDS):
                break
        else:
            raise AssertionError(f"no invocation timed out in {TIMEOUT_ROUNDS} rounds of resends")
    finally:
        # Back to normal before a message reaches the redrive limit (5 receives).
        lam.update_function_configuration(FunctionName=function, Timeout=timeout)
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": visibility})

    # Then, once every redelivery is handled, each device has every reading once, counted once
    for device in devices:
        wait_for_count(api, fleet["token"], device["id"], base_ms, count)
    wait_for_drained_queue(aws, endpoints)
    for device in devices:
        assert_each_reading_once(api, fleet["token"], device["id"], base_ms, count)
    # And nothing went to the dead-letter queue
    dlq = sqs.get_queue_url(QueueName=f"kumo-{endpoints['stage']}-telemetry-dlq")["QueueUrl"]
    ours = {device["id"] for device in devices}
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert not [
        m for m in dead.get("Messages", []) if json.loads(m["Body"]).get("device_id") in ours
    ]
