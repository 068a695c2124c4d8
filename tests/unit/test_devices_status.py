"""Device connectivity: online on traffic, offline after silence, events on every change."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from kumo.core import clock
from kumo.core.ids import new_id
from kumo.devices import status
from kumo.devices.models import META, DeviceModel, device_key, org_key

pytestmark = pytest.mark.usefixtures("aws")

BUS = "kumo-test"


@pytest.fixture
def bus_events() -> Any:
    """Every event on the bus, through a rule into a queue, as a test would see them."""
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="bus-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    events = boto3.client("events")
    events.put_rule(
        Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": ["kumo.devices"]})
    )
    events.put_targets(
        Rule="all",
        EventBusName=BUS,
        Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
    )

    def received() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        return [json.loads(m["Body"]) for m in messages]

    return received


def a_device(status_value: str = "never_seen") -> str:
    device_id, org_id, now = new_id(), new_id(), clock.utc_iso()
    DeviceModel(
        device_key(device_id),
        META,
        device_id=device_id,
        org_id=org_id,
        name="probe",
        device_type="sensor",
        status=status_value,
        key_hash="x",
        key_hint="x",
        created_by="u",
        created_at=now,
        updated_at=now,
        gsi1pk=org_key(org_id),
        gsi1sk=device_key(device_id),
    ).save()
    return device_id


def stored(device_id: str) -> DeviceModel:
    return DeviceModel.get(device_key(device_id), META)


def test_mark_seen_first_message_makes_device_online_and_announces_it(bus_events: Any) -> None:
    device_id = a_device()
    status.mark_seen({device_id})
    device = stored(device_id)
    assert device.status == "online" and device.last_seen_at and device.gsi2pk
    (event,) = bus_events()
    assert event["detail-type"] == "device.status_changed"
    assert event["detail"]["device_id"] == device_id and event["detail"]["status"] == "online"
    assert event["detail"]["org_id"] == device.org_id


def test_mark_seen_within_a_minute_writes_nothing(
    bus_events: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a device marked seen just now
    device_id = a_device()
    status.mark_seen({device_id})
    first = stored(device_id).last_seen_at
    real_now = clock.now

    # When it sends again 30 s later, then 61 s later
    monkeypatch.setattr(clock, "now", lambda: real_now() + 30)
    status.mark_seen({device_id})
    unchanged = stored(device_id).last_seen_at
    monkeypatch.setattr(clock, "now", lambda: real_now() + 61)
    status.mark_seen({device_id})

    # Then only the later one moves last_seen_at
    assert unchanged == first
    assert stored(device_id).last_seen_at > first


def test_mark_seen_online_device_only_moves_last_seen(bus_events: Any) -> None:
    device_id = a_device()
    status.mark_seen({device_id})
    bus_events()
    status.mark_seen({device_id})
    assert stored(device_id).status == "online"
    assert bus_events() == []


def test_mark_seen_unknown_device_is_ignored(bus_events: Any) -> None:
    status.mark_seen({new_id()})
    assert bus_events() == []


def test_silent_device_goes_offline_once(bus_events: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a device seen now
    device_id = a_device()
    status.mark_seen({device_id})
    bus_events()
    later = datetime.now(UTC) + timedelta(seconds=301)

    # When the sweep runs after the silence, twice
    first = status.mark_silent_offline(later)
    second = status.mark_silent_offline(later)

    # Then it is offline, out of the online index, announced once
    assert first.marked_offline == 1 and second.silent == 0
    device = stored(device_id)
    assert device.status == "offline" and device.gsi2pk is None
    (event,) = bus_events()
    assert event["detail"]["status"] == "offline"


def test_recent_device_stays_online(bus_events: Any) -> None:
    device_id = a_device()
    status.mark_seen({device_id})
    report = status.mark_silent_offline(datetime.now(UTC) + timedelta(seconds=60))
    assert report.marked_offline == 0 and stored(device_id).status == "online"


def test_offline_device_comes_back_online(bus_events: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    device_id = a_device()
    status.mark_seen({device_id})
    status.mark_silent_offline(datetime.now(UTC) + timedelta(seconds=301))
    bus_events()
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + 301)
    status.mark_seen({device_id})
    assert stored(device_id).status == "online"
    assert [e["detail"]["status"] for e in bus_events()] == ["online"]
