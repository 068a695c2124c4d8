"""Raw telemetry retention and archive on the local stack: an org's retention set over
HTTP reaches the raw items a device posts, the engine's TTL sweep expires them, and the
archive function writes them to S3, listed with a pre-signed link that downloads over HTTP.

The local engine deletes expired items but writes no stream record for those deletions
(tests/integration/test_engine_dynamodb_contract.py, test_gap_ttl_deletion_writes_no_stream_
record), so its event source mapping never hands the archive function a TTL removal. This
test therefore gives the deployed function, through Lambda's Invoke API, the very record
DynamoDB's stream carries on AWS: REMOVE, the raw item's old image as our ingestion stored it
(read from the table before the sweep), and TTL's userIdentity. Everything after that (S3,
the listing route, the link) is the real path. Archive keys are derived from the records, so
on an engine that did emit the record, its delivery and this one write the same object.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.integration.conftest import Api, Outbox, recorded, signed_up_user

DAY_MS = 86_400_000
# MiniStack sweeps expired items once a minute.
SWEEP_DEADLINE_SECONDS = 150.0
ARCHIVE_DEADLINE_SECONDS = 30.0
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


@pytest.fixture(scope="module")
def fleet(api: Api, outbox: Outbox) -> dict[str, Any]:
    owner = signed_up_user(api, outbox, "archivist")
    token = owner["access_token"]
    org_id = api.post("/api/v1/orgs", token=token, json={"name": "Archive Lab"}).json()["id"]
    device = api.post(
        "/api/v1/devices", token=token, json={"org_id": org_id, "name": "cold-probe"}
    ).json()
    outsider = signed_up_user(api, outbox, "archive-outsider")["access_token"]
    api.post("/api/v1/orgs", token=outsider, json={"name": "Elsewhere"})
    return {"token": token, "org_id": org_id, "device": device, "outsider": outsider}


def test_retention_is_set_by_patch_and_validated(api: Api, fleet: dict[str, Any]) -> None:
    org = f"/api/v1/orgs/{fleet['org_id']}"
    assert api.get(org, token=fleet["token"]).json()["telemetry_retention_days"] == 7

    bad = api.patch(org, token=fleet["token"], json={"telemetry_retention_days": 0})
    assert bad.status_code == 422, bad.text
    assert bad.headers["content-type"].startswith("application/problem+json")
    stranger = api.patch(org, token=fleet["outsider"], json={"telemetry_retention_days": 30})
    assert stranger.status_code == 404, stranger.text

    changed = api.patch(org, token=fleet["token"], json={"telemetry_retention_days": 1})
    assert changed.status_code == 200, changed.text
    assert changed.json()["telemetry_retention_days"] == 1
    assert api.get(org, token=fleet["token"]).json()["telemetry_retention_days"] == 1


def _raw_items(aws: Callable[[str], Any], endpoints: dict[str, Any], device_id: str) -> Any:
    return aws("dynamodb").query(
        TableName=f"kumo-{endpoints['stage']}-telemetry",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"RAW#{device_id}"}},
        ConsistentRead=True,
    )["Items"]


def _post_expired_reading(
    api: Api, aws: Callable[[str], Any], endpoints: dict[str, Any], fleet: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Post a reading just under 7 days old (so a 1-day retention has already passed) and
    read its raw item before the engine's sweep takes it; again if the sweep was first."""
    device = fleet["device"]
    for attempt in range(3):
        ts = int(time.time() * 1000) - 7 * DAY_MS + 10 * 60_000 + attempt
        sent = api.post(
            "/api/v1/device/readings",
            token=device["api_key"],
            json={"ts": ts, "metrics": {"temperature": -18.5, "door": 0}},
        )
        assert sent.status_code == 202, sent.text
        assert sent.json()["accepted"] == 1
        items = [
            i for i in _raw_items(aws, endpoints, device["id"]) if i["last_ms"]["N"] == str(ts)
        ]
        if items:
            return ts, items[0]
    pytest.fail("the sweep took every posted reading before it could be read")


def test_expired_reading_is_swept_archived_and_downloadable(
    api: Api, aws: Callable[[str], Any], endpoints: dict[str, Any], fleet: dict[str, Any]
) -> None:
    device_id = fleet["device"]["id"]
    org = f"/api/v1/orgs/{fleet['org_id']}"
    assert api.patch(org, token=fleet["token"], json={"telemetry_retention_days": 1}).ok
    # Ingestion caches an org's retention per container for five minutes; this org is new
    # and has sent nothing yet, so no container holds its old value.

    # Given a reading posted with a timestamp just under 7 days old
    ts, item = _post_expired_reading(api, aws, endpoints, fleet)

    # Then its raw item carries the org's 1-day retention, already past
    assert item["org_id"] == {"S": fleet["org_id"]}
    assert int(item["expires_at"]["N"]) == ts // 1000 + 86_400
    assert int(item["expires_at"]["N"]) < time.time()

    # And the engine's TTL sweep deletes it
    deadline = time.monotonic() + SWEEP_DEADLINE_SECONDS
    while _raw_items(aws, endpoints, device_id):
        assert time.monotonic() < deadline, "the engine did not expire the raw item"
        time.sleep(2)
    raw = api.get(
        f"/api/v1/devices/{device_id}/readings",
        token=fleet["token"],
        params={"metric": "temperature", "from": ts - 60_000, "to": ts + 60_000},
    )
    assert raw.status_code == 200 and raw.json()["items"] == [], raw.text

    # When the archive function is given the stream record of that TTL removal
    record = {
        "eventID": "it-archive-1",
        "eventName": "REMOVE",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": endpoints["region"],
        "userIdentity": TTL_IDENTITY,
        "dynamodb": {
            "Keys": {"pk": item["pk"], "sk": item["sk"]},
            "OldImage": item,
            "SequenceNumber": f"{ts:021d}",
            "StreamViewType": "OLD_IMAGE",
        },
    }
    lam = aws("lambda")
    # Functions are named kumo-<stage>-<directory> (infra/stacks.py).
    function = f"kumo-{endpoints['stage']}-archive_telemetry"
    answer = lam.invoke(FunctionName=function, Payload=json.dumps({"Records": [record]}).encode())
    assert "FunctionError" not in answer, answer["Payload"].read()
    assert json.loads(answer["Payload"].read()) == {"batchItemFailures": []}

    # Then the archives route lists the object within the deadline
    listing = f"/api/v1/devices/{device_id}/archives"
    deadline = time.monotonic() + ARCHIVE_DEADLINE_SECONDS
    while True:
        listed = api.get(listing, token=fleet["token"])
        assert listed.status_code == 200, listed.text
        if listed.json()["items"]:
            break
        assert time.monotonic() < deadline, "no archive listed"
        time.sleep(0.5)
    (entry,) = listed.json()["items"]
    day = time.strftime("%Y-%m-%d", time.gmtime(ts / 1000))
    assert entry["day"] == day
    assert entry["key"].startswith(
        f"archive/{fleet['org_id']}/{device_id}/{day.replace('-', '/')}/"
    )

    # And its pre-signed link downloads over HTTP and gunzips to the reading
    download = requests.get(entry["url"], timeout=10)
    assert download.status_code == 200, download.text
    assert len(download.content) == entry["size"]
    (line,) = [json.loads(text) for text in gzip.decompress(download.content).splitlines()]
    assert line["metrics"] == {"temperature": -18.5, "door": 0}
    assert line["device_id"] == device_id and line["org_id"] == fleet["org_id"]
    assert line["ts"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts // 1000)) + (
        f".{ts % 1000:03d}Z"
    )

    # And a day range without it lists nothing, and another org cannot see it
    before = api.get(listing, token=fleet["token"], params={"to": "2000-01-01"})
    assert before.status_code == 200 and before.json()["items"] == []
    stranger = api.get(listing, token=fleet["outsider"])
    assert stranger.status_code == 404, stranger.text
    assert "url" not in stranger.text


def _post_reading(api: Api, device: dict[str, Any], temperature: float) -> None:
    sent = api.post(
        "/api/v1/device/readings",
        token=device["api_key"],
        json={"metrics": {"temperature": temperature}},
    )
    assert sent.status_code == 202, sent.text


def test_user_delete_of_a_raw_item_is_not_archived(
    api: Api,
    aws: Callable[[str], Any],
    endpoints: dict[str, Any],
    fleet: dict[str, Any],
    recorder: dict[str, str],
) -> None:
    # Given a fresh raw item of a second device
    token = fleet["token"]
    device = api.post(
        "/api/v1/devices", token=token, json={"org_id": fleet["org_id"], "name": "deleted-probe"}
    ).json()
    _post_reading(api, device, 4)
    (item,) = _raw_items(aws, endpoints, device["id"])

    # And a probe: a mapping of the tests' own on the telemetry stream, given that device's
    # raw inserts, reading from the start in batches as large as the archive mapping's
    table = f"kumo-{endpoints['stage']}-telemetry"
    stream = aws("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    probe = {"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": [item["pk"]["S"]]}}}}
    aws("lambda").create_event_source_mapping(
        EventSourceArn=stream,
        FunctionName=recorder["function"],
        StartingPosition="TRIM_HORIZON",
        BatchSize=1000,
        FilterCriteria={"Filters": [{"Pattern": json.dumps(probe)}]},
    )

    # When someone deletes it (not TTL): the stream carries a REMOVE without TTL's identity
    aws("dynamodb").delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})

    # And the probe is handed a reading posted after the delete, then one posted after that
    # (it is given the device's first insert too, from before the delete): the engine's one
    # poller offers the stream to each mapping in turn, the archive's (made first, never
    # behind the probe) included, and runs a function before it moves on, so by the second
    # reading the archive mapping has been offered the delete and any archive it led to is in
    inserts: list[dict[str, Any]] = []
    for temperature, expected in ((5, 2), (6, 3)):
        _post_reading(api, device, temperature)
        inserts += recorded(
            aws,
            recorder["queue_url"],
            at_least=expected - len(inserts),
            seconds=ARCHIVE_DEADLINE_SECONDS,
        )
        assert len(inserts) == expected, inserts
    assert {line["event"] for line in inserts} == {"INSERT"}

    # Then the deployed mapping's filter kept it from the archive
    listed = api.get(f"/api/v1/devices/{device['id']}/archives", token=token)
    assert listed.status_code == 200 and listed.json()["items"] == [], listed.text
