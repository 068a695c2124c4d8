"""CSV exports under moto: requests and their checks, the org limit, idempotency, the worker's
state machine (claims, leases, redelivery, failures), the CSV layout, and download links."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from kumo.core import clock
from kumo.core.config import get_settings
from kumo.core.errors import ValidationFailed
from kumo.core.ids import new_id
from kumo.devices import service
from kumo.devices.schemas import RegisterDeviceRequest
from kumo.orgs import service as orgs
from kumo.telemetry import csv_export, exports, models, query
from kumo.telemetry.contract import Batch, Reading
from kumo.telemetry.models import (
    EXPORT_SLOT_PREFIX,
    ExportModel,
    ExportSlotModel,
    export_partition,
    export_request_key,
    export_slot_partition,
    export_sort_key,
)
from kumo.telemetry.schemas import ExportRequest
from kumo.telemetry.store import store_batches

from tests.unit.conftest import FakeContext, load_handler, principal_for

PROBLEM = "urn:kumo:problem:"
HOUR_MS = 3_600_000
# Readings sit a little in the past, on whole minutes, so rollup buckets are predictable.
T0 = (int(time.time() * 1000) // HOUR_MS - 3) * HOUR_MS


@dataclass(frozen=True)
class Fleet:
    org_id: str
    owner: str
    member: str
    viewer: str
    device: str


def new_fleet() -> Fleet:
    owner, member, viewer = new_id(), new_id(), new_id()
    org, _ = orgs.create_org(name="Fleet", owner_id=owner, owner_email=f"{owner.lower()}@x.test")
    orgs._add_member(org.org_id, member, f"{member.lower()}@x.test", "member")
    orgs._add_member(org.org_id, viewer, f"{viewer.lower()}@x.test", "viewer")
    device, _, _ = service.register_device(
        user_id=owner, request=RegisterDeviceRequest(org_id=org.org_id, name="probe")
    )
    return Fleet(org.org_id, owner, member, viewer, device.device_id)


@pytest.fixture(autouse=True)
def export_resources(aws: None) -> None:
    """Moto for every test here, with the bucket and queue that only exports use."""
    boto3.client("s3").create_bucket(Bucket=get_settings().data_bucket)
    boto3.client("sqs").create_queue(QueueName="kumo-test-exports")


@pytest.fixture
def fleet() -> Fleet:
    return new_fleet()


def store(fleet: Fleet, *messages: list[tuple[int, dict[str, float]]]) -> None:
    """Each argument is one device message: its (epoch ms, metrics) readings."""
    batches = [
        Batch(fleet.org_id, fleet.device, tuple(Reading(ts, m) for ts, m in message))
        for message in messages
    ]
    store_batches(batches)


def queued_messages() -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    url = get_settings().export_queue_url
    found: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
        ).get("Messages", [])
        if not got:
            return found
        found.extend(got)


def as_records(messages: list[dict[str, Any]], receives: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "messageId": m["MessageId"],
            "body": m["Body"],
            "attributes": {"ApproximateReceiveCount": str(receives)},
        }
        for m in messages
    ]


def plenty() -> int:
    return 300_000


def request(fleet: Fleet, user: str | None = None, key: str | None = None, **body: Any) -> Any:
    fields = {"from": T0 - HOUR_MS, "to": T0 + 2 * HOUR_MS, **body}
    return exports.request_export(
        user_id=user or fleet.member,
        device_id=fleet.device,
        request=ExportRequest.model_validate(fields),
        idempotency_key=key,
    )


def run_worker(receives: int = 1) -> list[str]:
    return csv_export.build_batch(as_records(queued_messages(), receives), plenty)


def read_csv(export: ExportModel) -> list[list[str]]:
    body = boto3.client("s3").get_object(Bucket=get_settings().data_bucket, Key=export.object_key)
    text = body["Body"].read().decode()
    assert text.endswith("\r\n")
    return list(csv.reader(io.StringIO(text)))


def reload(export: ExportModel) -> ExportModel:
    return ExportModel.get(export.pk, export.sk, consistent_read=True)


class WorkerContext(FakeContext):
    def get_remaining_time_in_millis(self) -> int:
        return 290_000


RESOURCES = {
    "create_export": "/api/v1/devices/{device_id}/exports",
    "list_exports": "/api/v1/devices/{device_id}/exports",
    "get_export": "/api/v1/devices/{device_id}/exports/{export_id}",
}


@pytest.fixture
def call(call_api: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """An export route's handler, called by `user` (a user id, or a principal)."""

    def invoke(
        function: str, method: str, user: str | dict[str, str], **kwargs: Any
    ) -> dict[str, Any]:
        resource = RESOURCES[function]
        principal = principal_for(user) if isinstance(user, str) else user
        return call_api(
            f"telemetry/{function}",
            method,
            resource.format(**kwargs["path_parameters"]),
            resource=resource,
            principal=principal,
            **kwargs,
        )

    return invoke


def post_export(
    call: Callable[..., dict[str, Any]],
    fleet: Fleet,
    user: str | dict[str, str],
    body: Any,
    **kwargs: Any,
) -> dict[str, Any]:
    return call(
        "create_export",
        "POST",
        user,
        body=body,
        path_parameters={"device_id": fleet.device},
        **kwargs,
    )


def held_slots(fleet: Fleet) -> list[ExportSlotModel]:
    return list(
        ExportSlotModel.query(
            export_slot_partition(fleet.org_id), ExportSlotModel.sk.startswith(EXPORT_SLOT_PREFIX)
        )
    )


def stored_exports(fleet: Fleet) -> list[ExportModel]:
    return list(
        ExportModel.query(export_partition(fleet.device), ExportModel.sk.startswith("EXPORT#"))
    )


# --- requests -------------------------------------------------------------------------------


def test_create_export_answers_202_with_location_and_queues_ids_only(
    call: Callable[..., dict[str, Any]], fleet: Fleet
) -> None:
    # Given a device that sent two metrics
    store(fleet, [(T0, {"temp": 1.0, "hum": 2.0})])
    # When a member asks for an export without naming metrics
    answer = post_export(
        call, fleet, fleet.member, {"from": T0 - 1000, "to": models.iso_ms(T0 + 1000)}
    )
    # Then it is queued with every metric the device sent, and the queue carries only ids
    assert answer["statusCode"] == 202, answer["json"]
    body = answer["json"]
    assert body["status"] == "queued" and body["metrics"] == ["hum", "temp"]
    assert body["from"].endswith("Z") and body["download_url"] is None
    assert (
        answer["multiValueHeaders"]["Location"][0]
        == f"/api/v1/devices/{fleet.device}/exports/{body['id']}"
    )
    (message,) = queued_messages()
    assert json.loads(message["Body"]) == {"export_id": body["id"], "device_id": fleet.device}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": T0, "to": T0}, "from"),
        ({"from": T0 + 1, "to": T0}, "from"),
        ({"from": "yesterday", "to": T0}, "from"),
        ({"from": "2024-05-01T00:00:00", "to": T0}, "from"),
        ({"from": T0 - 32 * 86_400_000, "to": T0}, "to"),
        ({"from": T0 - 93 * 86_400_000, "to": T0, "resolution": "1m"}, "to"),
        ({"from": T0 - 732 * 86_400_000, "to": T0, "resolution": "1d"}, "to"),
        ({"from": T0 - 1000, "to": T0, "metrics": ["temp", "temp"]}, "metrics"),
        ({"from": T0 - 1000, "to": T0, "metrics": ["1temp"]}, "metrics.0"),
        ({"from": T0 - 1000, "to": T0, "metrics": [f"m{i}" for i in range(33)]}, "metrics"),
        ({"from": T0 - 1000, "to": T0, "metrics": []}, "metrics"),
        ({"from": T0 - 1000, "to": T0, "resolution": "5m"}, "resolution"),
        ({"from": True, "to": T0}, "from"),
        ({"from": T0 - 1000, "to": T0, "format": "xlsx"}, "format"),
    ],
)
def test_create_export_refuses_bad_input_and_stores_nothing(
    call: Callable[..., dict[str, Any]], fleet: Fleet, body: dict[str, Any], field: str
) -> None:
    answer = post_export(call, fleet, fleet.member, body)
    assert answer["statusCode"] == 422, answer["json"]
    assert answer["multiValueHeaders"]["Content-Type"][0] == "application/problem+json"
    assert any(e["field"].startswith(field) for e in answer["json"]["errors"]), answer["json"]
    assert stored_exports(fleet) == [] and queued_messages() == []


def test_create_export_takes_the_longest_rollup_span(fleet: Fleet) -> None:
    export, _ = request(fleet, **{"from": T0 - 731 * 86_400_000, "to": T0, "resolution": "1h"})
    assert export.status == "queued"


def test_create_export_refuses_a_device_with_too_many_metrics_to_name(fleet: Fleet) -> None:
    store(fleet, [(T0, {f"m{i}": 1.0 for i in range(32)})], [(T0 + 1, {"extra": 1.0})])
    with pytest.raises(ValidationFailed) as refused:
        request(fleet)
    assert refused.value.extra["errors"][0]["field"] == "metrics"


def test_viewer_reads_but_cannot_export(call: Callable[..., dict[str, Any]], fleet: Fleet) -> None:
    answer = post_export(call, fleet, fleet.viewer, {"from": T0 - 1000, "to": T0})
    assert answer["statusCode"] == 403
    export, _ = request(fleet)
    got = call(
        "get_export",
        "GET",
        fleet.viewer,
        path_parameters={"device_id": fleet.device, "export_id": export.export_id},
    )
    assert got["statusCode"] == 200 and got["json"]["id"] == export.export_id


def test_another_org_gets_404_everywhere(call: Callable[..., dict[str, Any]], fleet: Fleet) -> None:
    export, _ = request(fleet)
    stranger = new_fleet().owner
    posted = post_export(call, fleet, stranger, {"from": T0 - 1000, "to": T0})
    got = call(
        "get_export",
        "GET",
        stranger,
        path_parameters={"device_id": fleet.device, "export_id": export.export_id},
    )
    listed = call("list_exports", "GET", stranger, path_parameters={"device_id": fleet.device})
    assert [posted["statusCode"], got["statusCode"], listed["statusCode"]] == [404, 404, 404]
    assert len(stored_exports(fleet)) == 1


def test_a_device_key_cannot_reach_the_export_routes(
    call: Callable[..., dict[str, Any]], fleet: Fleet
) -> None:
    device = {"kind": "device", "subject_id": fleet.device, "roles": "", "org_id": fleet.org_id}
    answer = call("list_exports", "GET", device, path_parameters={"device_id": fleet.device})
    posted = post_export(call, fleet, device, {"from": T0 - 1000, "to": T0})
    assert answer["statusCode"] == posted["statusCode"] == 403
    assert stored_exports(fleet) == []


def test_unknown_export_is_404(call: Callable[..., dict[str, Any]], fleet: Fleet) -> None:
    for export_id in (new_id(), "not-an-id"):
        got = call(
            "get_export",
            "GET",
            fleet.viewer,
            path_parameters={"device_id": fleet.device, "export_id": export_id},
        )
        assert got["statusCode"] == 404


# --- the org limit and idempotency ----------------------------------------------------------


def test_sixth_running_export_of_an_org_is_refused_until_one_finishes(fleet: Fleet) -> None:
    for _ in range(exports.MAX_ACTIVE_PER_ORG):
        request(fleet)
    with pytest.raises(exports.ExportLimitReached) as refused:
        request(fleet)
    assert refused.value.status == 409 and refused.value.slug == "export-limit-reached"
    # When one export is built, its slot is free again
    first = queued_messages()[:1]
    assert csv_export.build_batch(as_records(first), plenty) == []
    assert request(fleet)[0].status == "queued"


def test_limit_counts_the_whole_org(fleet: Fleet) -> None:
    other, _, _ = service.register_device(
        user_id=fleet.owner, request=RegisterDeviceRequest(org_id=fleet.org_id, name="second")
    )
    for _ in range(exports.MAX_ACTIVE_PER_ORG):
        request(fleet)
    with pytest.raises(exports.ExportLimitReached):
        exports.request_export(
            user_id=fleet.member,
            device_id=other.device_id,
            request=ExportRequest.model_validate({"from": T0 - 1000, "to": T0}),
            idempotency_key=None,
        )
    # Another org has its own slots
    assert request(new_fleet(), user=None)[0].status == "queued"


def test_a_slot_held_past_its_deadline_is_taken_over(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = [request(fleet)[0] for _ in range(exports.MAX_ACTIVE_PER_ORG)]
    later = clock.now() + exports.DEADLINE_SECONDS + 1
    monkeypatch.setattr(clock, "now", lambda: later)
    export, _ = request(fleet)
    assert export.status == "queued" and int(export.slot) == int(stuck[0].slot)
    # The export whose slot was taken reads as failed
    assert (
        exports.get_export(
            user_id=fleet.viewer, device_id=fleet.device, export_id=stuck[0].export_id
        ).status
        == "failed"
    )


def test_same_idempotency_key_and_body_answer_the_first_export(
    call: Callable[..., dict[str, Any]], fleet: Fleet
) -> None:
    body = {"from": T0 - 1000, "to": T0, "metrics": ["temp"]}
    headers = {"Idempotency-Key": "retry-me-1"}
    first = post_export(call, fleet, fleet.member, body, headers=headers)
    # Header names are case-insensitive
    second = post_export(call, fleet, fleet.member, body, headers={"idempotency-key": "retry-me-1"})
    assert first["statusCode"] == second["statusCode"] == 202
    assert first["json"]["id"] == second["json"]["id"]
    assert second["multiValueHeaders"]["Idempotent-Replayed"][0] == "true"
    assert len(stored_exports(fleet)) == 1 and len(queued_messages()) == 1


def test_same_idempotency_key_with_another_body_is_refused(fleet: Fleet) -> None:
    request(fleet, key="k1", metrics=["temp"])
    with pytest.raises(exports.IdempotencyKeyReused) as refused:
        request(fleet, key="k1", metrics=["hum"])
    assert refused.value.status == 422
    assert len(stored_exports(fleet)) == 1


def test_idempotency_keys_belong_to_their_user(fleet: Fleet) -> None:
    mine, _ = request(fleet, key="shared")
    theirs, replayed = request(fleet, user=fleet.owner, key="shared")
    assert not replayed and theirs.export_id != mine.export_id


def test_a_failed_enqueue_fails_the_export_and_frees_its_slot(fleet: Fleet) -> None:
    boto3.client("sqs").delete_queue(QueueUrl=get_settings().export_queue_url)
    with pytest.raises(exports.ServiceUnavailable):
        request(fleet)
    (export,) = stored_exports(fleet)
    assert export.status == "failed"
    assert held_slots(fleet) == []


# --- the worker -----------------------------------------------------------------------------


def test_raw_export_has_one_row_per_timestamp_with_empty_cells(fleet: Fleet) -> None:
    # Given two overlapping messages sent out of order, and a metric missing at some instants
    store(
        fleet,
        [(T0 + 60_000, {"temp": 21.5, "hum": 40}), (T0 + 180_000, {"temp": 22})],
        [(T0, {"hum": 41.25}), (T0 + 120_000, {"temp": -0.125, "hum": 123456.789})],
    )
    export, _ = request(fleet, metrics=["temp", "hum"])
    # When the worker builds it
    assert run_worker() == []
    # Then the file is ready, rows in time order, values as sent
    export = reload(export)
    assert export.status == "ready" and export.row_count == 4
    rows = read_csv(export)
    assert rows == [
        ["timestamp", "temp", "hum"],
        [models.iso_ms(T0), "", "41.25"],
        [models.iso_ms(T0 + 60_000), "21.5", "40"],
        [models.iso_ms(T0 + 120_000), "-0.125", "123456.789"],
        [models.iso_ms(T0 + 180_000), "22", ""],
    ]
    assert rows[1][0].endswith(".000Z")
    assert export.byte_size == len("\r\n".join(",".join(r) for r in rows)) + 2
    assert export.object_key == f"exports/{fleet.org_id}/{fleet.device}/{export.export_id}.csv"


def test_raw_export_keeps_only_the_range(fleet: Fleet) -> None:
    store(fleet, [(T0 - 5000, {"temp": 1}), (T0, {"temp": 2}), (T0 + 5000, {"temp": 3})])
    export, _ = request(fleet, **{"from": T0, "to": T0 + 4999})
    run_worker()
    assert [r[1] for r in read_csv(reload(export))] == ["temp", "2"]


def test_rollup_export_has_count_sum_min_max_avg_per_metric(fleet: Fleet) -> None:
    store(
        fleet,
        [(T0, {"temp": 1, "hum": 10}), (T0 + 1000, {"temp": 3})],
        [(T0 + HOUR_MS, {"hum": 20})],
    )
    export, _ = request(fleet, metrics=["temp", "hum"], resolution="1h")
    run_worker()
    rows = read_csv(reload(export))
    assert rows[0] == [
        "timestamp",
        *[f"temp_{f}" for f in ("count", "sum", "min", "max", "avg")],
        *[f"hum_{f}" for f in ("count", "sum", "min", "max", "avg")],
    ]
    assert rows[1:] == [
        [models.iso_ms(T0), "2", "4", "1", "3", "2", "1", "10", "10", "10", "10"],
        [models.iso_ms(T0 + HOUR_MS), "", "", "", "", "", "1", "20", "20", "20", "20"],
    ]


def test_export_of_a_silent_range_is_a_header(fleet: Fleet) -> None:
    export, _ = request(fleet, metrics=["temp"])
    run_worker()
    export = reload(export)
    assert export.status == "ready" and export.row_count == 0
    assert read_csv(export) == [["timestamp", "temp"]]


def test_every_page_is_read(fleet: Fleet) -> None:
    readings = [(T0 + i * 1000, {"temp": float(i)}) for i in range(250)]
    store(fleet, *[[r] for r in readings])
    export, _ = request(fleet, metrics=["temp"])
    run_worker()
    rows = read_csv(reload(export))
    assert len(rows) == 251 and rows[-1][1] == "249"


def test_large_export_goes_up_in_parts(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 256)
    monkeypatch.setattr(csv_export, "PART_BYTES", 1024)
    readings = [(T0 + i * 1000, {"temp": float(i), "hum": i / 3}) for i in range(300)]
    store(fleet, readings[:150], readings[150:])
    export, _ = request(fleet, metrics=["temp", "hum"])
    sent: list[int] = []
    original = csv_export._Upload._send_part

    def counting(upload: Any) -> None:
        sent.append(upload.buffer.tell())
        original(upload)

    monkeypatch.setattr(csv_export._Upload, "_send_part", counting)
    run_worker()
    export = reload(export)
    rows = read_csv(export)
    assert len(rows) == 301 and rows[150][1] == "149"
    assert len(sent) > 1
    assert int(export.byte_size) == sum(sent)


def test_too_large_export_fails_with_a_reason_and_no_file(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_export, "MAX_ROWS", 2)
    store(fleet, [(T0 + i, {"temp": 1.0}) for i in range(3)])
    export, _ = request(fleet, metrics=["temp"])
    assert run_worker() == []  # refused for good: no retry
    export = reload(export)
    assert export.status == "failed" and "2 rows" in (export.error or "")
    listed = boto3.client("s3").list_objects_v2(Bucket=get_settings().data_bucket)
    assert listed.get("KeyCount", 0) == 0
    assert held_slots(fleet) == []


def test_redelivered_message_leaves_a_ready_export_alone(fleet: Fleet) -> None:
    store(fleet, [(T0, {"temp": 1.0})])
    export, _ = request(fleet, metrics=["temp"])
    messages = queued_messages()
    assert csv_export.build_batch(as_records(messages), plenty) == []
    before = read_csv(reload(export))
    # When more readings arrive and the same message comes again
    store(fleet, [(T0 + 1000, {"temp": 2.0})])
    assert csv_export.build_batch(as_records(messages, receives=2), plenty) == []
    # Then the file and the record are those of the first build
    after = reload(export)
    assert after.status == "ready" and int(after.attempts) == 1 and after.row_count == 1
    assert read_csv(after) == before


def test_one_failing_export_does_not_fail_its_batch_neighbour(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = new_fleet()
    store(fleet, [(T0, {"temp": 1.0})])
    good, _ = request(fleet, metrics=["temp"])
    bad, _ = request(other, metrics=["temp"])
    original = query.raw_readings

    def flaky(device_id: str, start_ms: int, end_ms: int) -> Any:
        if device_id == other.device:
            raise RuntimeError("throttled")
        return original(device_id, start_ms, end_ms)

    monkeypatch.setattr(query, "raw_readings", flaky)
    messages = queued_messages()
    failed = csv_export.build_batch(as_records(messages), plenty)
    bad_message = [m["MessageId"] for m in messages if bad.export_id in m["Body"]]
    assert failed == bad_message
    assert reload(good).status == "ready"
    # The failed one stays running under a lease; the next delivery after it lapses retries
    assert reload(bad).status == "running" and reload(bad).error is None


def test_last_failed_attempt_records_the_reason(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    export, _ = request(fleet, metrics=["temp"])

    def broken(*_: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(query, "raw_readings", broken)
    messages = queued_messages()
    later = clock.now()
    for receive in (1, 2, 3):
        # Each redelivery comes after the visibility timeout, past the last lease
        later += 901
        monkeypatch.setattr(clock, "now", lambda at=later: at)
        assert len(csv_export.build_batch(as_records(messages, receive), lambda: 10_000)) == 1
        status = reload(export).status
        assert status == ("failed" if receive == 3 else "running")
    export = reload(export)
    assert int(export.attempts) == 3
    assert export.error == "The export failed 3 times, the last with an internal error."
    assert held_slots(fleet) == []


def test_a_live_lease_sends_a_duplicate_delivery_back(fleet: Fleet) -> None:
    export, _ = request(fleet, metrics=["temp"])
    messages = queued_messages()
    assert exports.claim(
        export, new_id(), int(clock.now() * 1000) + 60_000, int(clock.now() * 1000)
    )
    assert len(csv_export.build_batch(as_records(messages, 2), plenty)) == 1
    assert reload(export).status == "running" and int(reload(export).attempts) == 1


def test_a_lapsed_lease_is_built_again(fleet: Fleet) -> None:
    store(fleet, [(T0, {"temp": 1.0})])
    export, _ = request(fleet, metrics=["temp"])
    messages = queued_messages()
    now_ms = int(clock.now() * 1000)
    assert exports.claim(export, new_id(), now_ms - 1, now_ms - 10_000)
    assert csv_export.build_batch(as_records(messages, 2), plenty) == []
    export = reload(export)
    assert export.status == "ready" and int(export.attempts) == 2


def test_running_out_of_time_retries_without_a_file(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    store(fleet, *[[(T0 + i * 1000, {"temp": float(i)})] for i in range(2000)])
    export, _ = request(fleet, metrics=["temp"])
    messages = queued_messages()
    assert len(csv_export.build_batch(as_records(messages), lambda: 1000)) == 1
    listed = boto3.client("s3").list_objects_v2(Bucket=get_settings().data_bucket)
    assert listed.get("KeyCount", 0) == 0 and reload(export).status == "running"


def test_an_export_past_its_deadline_is_not_built(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    export, _ = request(fleet, metrics=["temp"])
    later = clock.now() + exports.DEADLINE_SECONDS + 1
    monkeypatch.setattr(clock, "now", lambda: later)
    assert run_worker() == []
    export = reload(export)
    assert export.status == "failed" and export.error == "The export did not finish in time."


def test_unreadable_and_unknown_messages_are_dropped(fleet: Fleet) -> None:
    records = [
        {"messageId": "a", "body": "not json"},
        {"messageId": "b", "body": json.dumps({"export_id": new_id(), "device_id": fleet.device})},
    ]
    assert csv_export.build_batch(records, plenty) == []


def test_worker_handler_reports_batch_item_failures(
    fleet: Fleet, load_event: Callable[[str], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    export, _ = request(fleet, metrics=["temp"])
    event = load_event("telemetry/build_export/sqs")
    event["Records"][0]["body"] = json.dumps(
        {"export_id": export.export_id, "device_id": fleet.device}
    )
    handler = load_handler("telemetry/build_export")
    assert handler.lambda_handler(event, WorkerContext()) == {"batchItemFailures": []}
    assert reload(export).status == "ready"


# --- reading and links ----------------------------------------------------------------------


def test_ready_export_has_a_15_minute_link_with_a_file_name(
    call: Callable[..., dict[str, Any]], fleet: Fleet
) -> None:
    store(fleet, [(T0, {"temp": 1.0})])
    export, _ = request(fleet, metrics=["temp"], resolution="1m")
    run_worker()
    got = call(
        "get_export",
        "GET",
        fleet.viewer,
        path_parameters={"device_id": fleet.device, "export_id": export.export_id},
    )["json"]
    assert got["status"] == "ready" and got["row_count"] == 1 and got["byte_size"] > 0
    link = urlsplit(got["download_url"])
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    assert link.path.endswith(f"/exports/{fleet.org_id}/{fleet.device}/{export.export_id}.csv")
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and query["X-Amz-Expires"] == "900"
    assert query["response-content-type"] == "text/csv"
    disposition = query["response-content-disposition"]
    assert disposition.startswith('attachment; filename="') and disposition.endswith('.csv"')
    assert f"{fleet.device}_1m_" in disposition
    expires = clock.utc_iso(clock.now() + 900)
    assert got["expires_at"][:16] == expires[:16]
    # And the link fetches the file (moto serves pre-signed URLs too)
    import requests

    fetched = requests.get(got["download_url"], timeout=10)
    assert fetched.status_code == 200 and fetched.text.startswith("timestamp,temp_count,")


def test_list_is_newest_first_and_paginated(
    call: Callable[..., dict[str, Any]], fleet: Fleet
) -> None:
    made = [request(fleet)[0].export_id for _ in range(3)]
    first = call(
        "list_exports",
        "GET",
        fleet.viewer,
        path_parameters={"device_id": fleet.device},
        query={"limit": "2"},
    )["json"]
    second = call(
        "list_exports",
        "GET",
        fleet.viewer,
        path_parameters={"device_id": fleet.device},
        query={"limit": "2", "cursor": first["next_cursor"]},
    )["json"]
    ids = [e["id"] for e in first["items"] + second["items"]]
    assert ids == made[::-1]


def test_an_export_past_its_week_is_gone(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    export, _ = request(fleet)
    later = clock.now() + exports.KEEP_SECONDS + 1
    monkeypatch.setattr(clock, "now", lambda: later)
    with pytest.raises(exports.NotFound):
        exports.get_export(user_id=fleet.viewer, device_id=fleet.device, export_id=export.export_id)
    found, _ = exports.list_exports(
        user_id=fleet.viewer, device_id=fleet.device, limit=None, cursor=None
    )
    assert found == []


# --- rows -----------------------------------------------------------------------------------


def test_merge_rows_orders_streams_that_are_out_of_order_within_the_disorder() -> None:
    def stream(points: list[int]) -> Iterator[tuple[int, Any]]:
        return iter([(ts, f"v{ts}") for ts in points])

    merged = list(csv_export.merge_rows({"a": stream([5, 3, 9, 7]), "b": stream([3, 8])}, 3))
    assert [ts for ts, _ in merged] == [3, 5, 7, 8, 9]
    assert merged[0][1] == {"a": "v3", "b": "v3"}


def test_request_keys_stay_out_of_a_device_export_list() -> None:
    assert not export_request_key("abc").startswith(export_sort_key(""))


def test_raw_rows_orders_readings_that_come_out_of_order_within_an_item_span() -> None:
    span = models.RAW_SPAN_MS
    readings = [
        (105, {"a": 1.0}),
        (103, {"a": 2.0, "b": 9.0, "other": 0.0}),
        (103, {"b": 4.0}),  # the same instant again: its value wins
        (110 + span, {"b": 3.0}),  # rows before 110 are complete now
        (100 + 3 * span, {"other": 1.0}),  # no chosen metric: no row
    ]
    rows = list(csv_export.raw_rows(readings, ["a", "b"]))
    assert rows == [(103, {"a": 2.0, "b": 4.0}), (105, {"a": 1.0}), (110 + span, {"b": 3.0})]


def test_request_export_is_limited_per_user_and_a_replay_costs_nothing(fleet, monkeypatch):
    # Given a user allowed two exports an hour
    from kumo.core import abuse_limits
    from kumo.core.rate_limit import Limit, RateLimited

    monkeypatch.setattr(abuse_limits, "EXPORT_PER_USER", Limit("export.user", 2, 3600, "exports"))

    # When the user asks for one export, replays it twice, then asks for one more
    request(fleet, key="same")
    request(fleet, key="same")
    request(fleet, key="same")
    request(fleet)

    # Then the replays spent nothing, and a fourth export is refused
    with pytest.raises(RateLimited):
        request(fleet)
