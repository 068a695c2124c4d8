"""The archive of expired raw telemetry under moto: which stream records count, grouping per
org, device and day, the gzip JSON Lines content, deterministic keys, the handler's partial
failures, and GET /api/v1/devices/{device_id}/archives."""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError
from kumo.core import aws
from kumo.core.config import get_settings
from kumo.core.ids import new_id
from kumo.devices.schemas import RegisterDeviceRequest
from kumo.orgs import service as orgs
from kumo.telemetry import archive

from tests.unit.conftest import FakeContext, load_handler, principal_for

PROBLEM = "urn:kumo:problem:"
# The ids events/telemetry/archive_telemetry/*.json carry.
EVENT_ORG = "01JAAAAAAAAAAAAAAAAAAAAAAA"
EVENT_DEVICE = "01JBBBBBBBBBBBBBBBBBBBBBBB"
TTL = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


@pytest.fixture(autouse=True)
def bucket(aws: None) -> str:
    name = get_settings().data_bucket
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def objects(prefix: str = archive.ARCHIVE_PREFIX) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=get_settings().data_bucket, Prefix=prefix)
    return {
        entry["Key"]: s3.get_object(Bucket=get_settings().data_bucket, Key=entry["Key"])[
            "Body"
        ].read()
        for entry in listed.get("Contents", [])
    }


def lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(body).decode().splitlines()]


def removal(
    device_id: str,
    org_id: str,
    sk: str,
    readings: list[list[Any]],
    *,
    sequence: str,
    identity: dict[str, str] | None = TTL,
) -> dict[str, Any]:
    """A stream record of the removal of one raw item, as DynamoDB's TTL writes it."""
    image = {
        "pk": {"S": f"RAW#{device_id}"},
        "sk": {"S": sk},
        "r": {"S": json.dumps(readings, separators=(",", ":"))},
        "n": {"N": str(len(readings))},
        "last_ms": {"N": str(readings[-1][0])},
        "org_id": {"S": org_id},
        "expires_at": {"N": "1715169600"},
    }
    record: dict[str, Any] = {
        "eventID": f"e{sequence}",
        "eventName": "REMOVE",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": {"pk": image["pk"], "sk": image["sk"]},
            "OldImage": image,
            "SequenceNumber": sequence,
            "StreamViewType": "OLD_IMAGE",
        },
    }
    if identity is not None:
        record["userIdentity"] = identity
    return record


# --- which records count --------------------------------------------------------------------


def test_archive_writes_ttl_removals_of_raw_items_as_gzip_json_lines(load_event):
    # Given the sample batch: two raw items of one device and day, expired by TTL
    event = load_event("telemetry/archive_telemetry/ttl_removal")

    # When it is archived
    report = archive.archive_records(event["Records"])

    # Then one object holds the three readings, oldest first, with device and org
    assert (report.objects, report.readings, report.failed) == (1, 3, [])
    ((key, body),) = objects().items()
    assert key.startswith(f"archive/{EVENT_ORG}/{EVENT_DEVICE}/2024/05/01/")
    assert key.endswith(".jsonl.gz")
    assert lines(body) == [
        {
            "ts": "2024-05-01T12:00:00.000Z",
            "metrics": {"humidity": 40, "temperature": 21.5},
            "device_id": EVENT_DEVICE,
            "org_id": EVENT_ORG,
            "item": "2024-05-01T12:00:00.000Z#0123456789abcdef",
        },
        {
            "ts": "2024-05-01T12:05:00.000Z",
            "metrics": {"temperature": 21.7},
            "device_id": EVENT_DEVICE,
            "org_id": EVENT_ORG,
            "item": "2024-05-01T12:05:00.000Z#fedcba9876543210",
        },
        {
            "ts": "2024-05-01T12:06:00.000Z",
            "metrics": {"temperature": 21.9},
            "device_id": EVENT_DEVICE,
            "org_id": EVENT_ORG,
            "item": "2024-05-01T12:05:00.000Z#fedcba9876543210",
        },
    ]


def test_archive_ignores_rollups_user_deletes_and_inserts(load_event):
    # Given a rollup's TTL removal, a user's delete of a raw item, an insert, and one TTL
    # removal of a raw item
    event = load_event("telemetry/archive_telemetry/mixed_records")

    # When the batch is archived
    report = archive.archive_records(event["Records"])

    # Then only the raw item's TTL removal is archived
    assert (report.skipped, report.objects, report.readings) == (3, 1, 2)
    ((_, body),) = objects().items()
    assert [line["ts"] for line in lines(body)] == [
        "2024-05-01T12:05:00.000Z",
        "2024-05-01T12:06:00.000Z",
    ]


@pytest.mark.parametrize(
    "identity",
    [None, {"type": "Service", "principalId": "someone.amazonaws.com"}, {"type": "User"}],
    ids=["no-identity", "other-service", "user"],
)
def test_is_raw_ttl_removal_needs_dynamodbs_own_identity(identity):
    record = removal(new_id(), new_id(), "s", [[1, {"a": 1}]], sequence="1", identity=identity)

    assert not archive.is_raw_ttl_removal(record)


def test_archive_of_nothing_writes_nothing():
    report = archive.archive_records([])

    assert (report.objects, report.failed) == (0, [])
    assert objects() == {}


# --- grouping and keys ----------------------------------------------------------------------


def test_archive_groups_per_org_device_and_day():
    # Given removals of two devices (two orgs), one item reaching over midnight
    org_a, org_b, dev_a, dev_b = new_id(), new_id(), new_id(), new_id()
    late, early = 1714607940000, 1714608000000  # 2024-05-01T23:59:00Z, 2024-05-02T00:00:00Z
    records = [
        removal(dev_a, org_a, "k1", [[late, {"t": 1}], [early, {"t": 2}]], sequence="1"),
        removal(dev_a, org_a, "k2", [[early + 60_000, {"t": 3}]], sequence="2"),
        removal(dev_b, org_b, "k3", [[late, {"t": 4}]], sequence="3"),
    ]

    # When archived
    report = archive.archive_records(records)

    # Then there is one object per org, device and day
    assert report.objects == 3
    stored = objects()
    days = sorted(key.rsplit("/", 1)[0] for key in stored)
    assert days == sorted(
        [
            f"archive/{org_a}/{dev_a}/2024/05/01",
            f"archive/{org_a}/{dev_a}/2024/05/02",
            f"archive/{org_b}/{dev_b}/2024/05/01",
        ]
    )
    (second_day,) = [body for key, body in stored.items() if "/2024/05/02/" in key]
    assert [line["metrics"]["t"] for line in lines(second_day)] == [2, 3]


def test_redelivered_batch_overwrites_the_same_object_with_the_same_bytes(load_event):
    # Given a batch archived once
    event = load_event("telemetry/archive_telemetry/ttl_removal")
    archive.archive_records(event["Records"])
    first = objects()

    # When the same batch is delivered again
    archive.archive_records(copy.deepcopy(event["Records"]))

    # Then the bucket holds the same single object, byte for byte
    assert objects() == first
    assert len(first) == 1


def test_object_key_depends_on_the_items_it_holds(load_event):
    # Given the sample batch and the same batch without its second item
    event = load_event("telemetry/archive_telemetry/ttl_removal")
    archive.archive_records(event["Records"])
    archive.archive_records(event["Records"][:1])

    # Then they are two objects: another set of items is another object
    keys = sorted(objects())
    assert len(keys) == 2
    assert all(key.rsplit("/", 1)[1].startswith("20240501T120000.000Z-") for key in keys)


# --- failures ---------------------------------------------------------------------------------


def test_unreadable_image_is_reported_failed_and_its_neighbours_archived(load_event):
    # Given a batch whose first record's image lost its readings
    event = load_event("telemetry/archive_telemetry/ttl_removal")
    del event["Records"][0]["dynamodb"]["OldImage"]["r"]

    # When archived
    report = archive.archive_records(event["Records"])

    # Then that record is failed and the other one is archived
    assert report.failed == [event["Records"][0]["dynamodb"]["SequenceNumber"]]
    assert report.readings == 2


def test_image_with_a_path_in_its_ids_is_refused(load_event):
    event = load_event("telemetry/archive_telemetry/ttl_removal")
    event["Records"][0]["dynamodb"]["OldImage"]["org_id"] = {"S": "../other"}

    report = archive.archive_records(event["Records"][:1])

    assert len(report.failed) == 1
    assert objects() == {}


@pytest.fixture
def failing_puts(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Make S3 refuse puts of keys under one device's prefix."""
    real = aws.s3()

    class Refusing:
        def __init__(self) -> None:
            self.device = ""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def put_object(self, **kwargs: Any) -> Any:
            if self.device and f"/{self.device}/" in kwargs["Key"]:
                raise ClientError({"Error": {"Code": "SlowDown"}}, "PutObject")
            return real.put_object(**kwargs)

    refusing = Refusing()
    monkeypatch.setattr(aws, "s3", lambda: refusing)

    def fail_for(device_id: str) -> None:
        refusing.device = device_id

    return fail_for


def _two_device_batch() -> tuple[list[dict[str, Any]], str]:
    org, good, bad = new_id(), new_id(), new_id()
    records = [
        removal(good, org, "k1", [[1714564800000, {"t": 1}]], sequence="100"),
        removal(bad, org, "k2", [[1714564800000, {"t": 2}]], sequence="101"),
        removal(good, org, "k3", [[1714564860000, {"t": 3}]], sequence="102"),
        removal(bad, org, "k4", [[1714564860000, {"t": 4}]], sequence="103"),
    ]
    return records, bad


def test_failed_put_fails_exactly_its_groups_records(failing_puts):
    # Given a batch of two devices where one device's object cannot be written
    records, bad = _two_device_batch()
    failing_puts(bad)

    # When archived
    report = archive.archive_records(records)

    # Then that device's records are failed, in batch order, and the other is stored
    assert report.failed == ["101", "103"]
    assert report.objects == 1


def test_handler_answers_partial_batch_failure(failing_puts, monkeypatch):
    # Given partial responses on (AWS) and one device's object failing
    records, bad = _two_device_batch()
    failing_puts(bad)
    handler = load_handler("telemetry/archive_telemetry")

    # When the handler runs on the batch
    answer = handler.lambda_handler({"Records": records}, FakeContext())

    # Then it names the failed records, the stream resumes at the first of them
    assert answer == {"batchItemFailures": [{"itemIdentifier": "101"}, {"itemIdentifier": "103"}]}


def test_handler_answers_no_failures_when_all_archived(load_event):
    handler = load_handler("telemetry/archive_telemetry")

    answer = handler.lambda_handler(
        load_event("telemetry/archive_telemetry/ttl_removal"), FakeContext()
    )

    assert answer == {"batchItemFailures": []}
    assert len(objects()) == 1


@pytest.fixture
def whole_batch_failures(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("STREAM_PARTIAL_FAILURES", "false")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_handler_raises_when_partial_responses_are_off(failing_puts, whole_batch_failures):
    # Given the local engine's setting (it ignores partial responses on streams)
    records, bad = _two_device_batch()
    failing_puts(bad)
    handler = load_handler("telemetry/archive_telemetry")

    # When a record fails, the whole batch fails, so the engine retries it
    with pytest.raises(handler.ArchiveFailed):
        handler.lambda_handler({"Records": records}, FakeContext())


# --- GET /api/v1/devices/{device_id}/archives ---------------------------------------------------


def new_fleet() -> tuple[str, dict[str, str], dict[str, str], str]:
    """An org with an owner, a viewer, and one device: (org, owner, viewer, device)."""
    owner_id, viewer_id = new_id(), new_id()
    org, _ = orgs.create_org(name="Fleet", owner_id=owner_id, owner_email="o@x.test")
    orgs._add_member(org.org_id, viewer_id, f"{viewer_id.lower()}@x.test", "viewer")
    from kumo.devices import service as devices

    device = devices.register_device(
        user_id=owner_id, request=RegisterDeviceRequest(org_id=org.org_id, name="probe")
    )[0]
    return org.org_id, principal_for(owner_id), principal_for(viewer_id), device.device_id


def archive_days(org_id: str, device_id: str, days: list[str]) -> None:
    records = []
    for index, day in enumerate(days):
        ts = int(datetime.fromisoformat(f"{day}T10:00:00+00:00").timestamp() * 1000)
        records.append(removal(device_id, org_id, f"k{index}", [[ts, {"t": index}]], sequence=day))
    assert archive.archive_records(records).failed == []


def list_archives(call_api: Any, device_id: str, user: dict[str, str], **query: str) -> Any:
    return call_api(
        "telemetry/list_device_archives",
        "GET",
        f"/api/v1/devices/{device_id}/archives",
        resource="/api/v1/devices/{device_id}/archives",
        path_parameters={"device_id": device_id},
        query=query or None,
        principal=user,
    )


def test_list_archives_answers_days_keys_sizes_and_presigned_links(call_api):
    # Given a device with archives on two days
    org_id, _, viewer, device_id = new_fleet()
    archive_days(org_id, device_id, ["2024-05-01", "2024-05-02"])

    # When a viewer lists them
    response = list_archives(call_api, device_id, viewer)

    # Then each is answered with its day, key, size and a five-minute GET link
    assert response["statusCode"] == 200, response
    items = response["json"]["items"]
    assert [item["day"] for item in items] == ["2024-05-01", "2024-05-02"]
    stored = objects()
    for item in items:
        assert item["size"] == len(stored[item["key"]])
        assert item["url_expires_in"] == 300
        url = urlsplit(item["url"])
        assert url.path.endswith(item["key"])
        query = parse_qs(url.query)
        assert query.get("X-Amz-Expires") == ["300"] or "Expires" in query
    assert response["json"]["next_cursor"] is None


def test_list_archives_keeps_to_the_days_asked(call_api):
    org_id, owner, _, device_id = new_fleet()
    archive_days(org_id, device_id, ["2024-04-30", "2024-05-01", "2024-05-02", "2024-05-03"])

    response = list_archives(
        call_api, device_id, owner, **{"from": "2024-05-01", "to": "2024-05-02"}
    )

    assert [item["day"] for item in response["json"]["items"]] == ["2024-05-01", "2024-05-02"]


def test_list_archives_pages_with_a_cursor(call_api):
    # Given three archive days
    org_id, owner, _, device_id = new_fleet()
    archive_days(org_id, device_id, ["2024-05-01", "2024-05-02", "2024-05-03"])

    # When listed two at a time
    first = list_archives(call_api, device_id, owner, limit="2")["json"]
    second = list_archives(call_api, device_id, owner, limit="2", cursor=first["next_cursor"])

    # Then the pages follow each other without overlap
    assert [i["day"] for i in first["items"]] == ["2024-05-01", "2024-05-02"]
    assert [i["day"] for i in second["json"]["items"]] == ["2024-05-03"]
    assert second["json"]["next_cursor"] is None


def test_list_archives_refuses_another_devices_cursor(call_api):
    org_id, owner, _, device_id = new_fleet()
    archive_days(org_id, device_id, ["2024-05-01", "2024-05-02"])
    other = new_fleet()
    archive_days(other[0], other[3], ["2024-05-01", "2024-05-02"])
    cursor = list_archives(call_api, other[3], other[1], limit="1")["json"]["next_cursor"]

    response = list_archives(call_api, device_id, owner, cursor=cursor)

    assert response["statusCode"] == 400, response


def test_list_archives_of_another_orgs_device_answers_404(call_api):
    # Given a device with an archive, and a stranger who owns another org
    org_id, _, _, device_id = new_fleet()
    archive_days(org_id, device_id, ["2024-05-01"])
    stranger = new_fleet()[1]

    # When the stranger lists the device's archives
    response = list_archives(call_api, device_id, stranger)

    # Then the device does not exist for them
    assert response["statusCode"] == 404, response
    assert "url" not in json.dumps(response["json"])


@pytest.mark.parametrize(
    "query",
    [{"from": "2024-5-1"}, {"to": "yesterday"}, {"from": "2024-05-03", "to": "2024-05-01"}],
    ids=["short-day", "word", "reversed"],
)
def test_list_archives_rejects_bad_days_with_422(call_api, query):
    _, owner, _, device_id = new_fleet()

    response = list_archives(call_api, device_id, owner, **query)

    assert response["statusCode"] == 422, response
    assert response["json"]["type"] == PROBLEM + "validation-error"
