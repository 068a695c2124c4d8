"""Device config as a shadow under moto (which keeps named shadows with versions and merges
updates as IoT Core does): the desired copy on every config change, its retry queue, and
the reports devices make on the shadow, recorded like POST /api/v1/device/config/applied."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from kumo.core.config import get_settings
from kumo.core.errors import ValidationFailed
from kumo.core.ids import new_id
from kumo.devices import iot, service, shadow
from kumo.devices.schemas import UpdateDeviceRequest

from tests.support.factories import new_fleet, principal_for, register_device
from tests.unit.conftest import FakeContext, load_handler

pytestmark = pytest.mark.usefixtures("aws")


@dataclass(frozen=True)
class Fleet:
    org_id: str
    owner: str
    device: str  # with a thing
    thing: str
    plain: str  # without one


@pytest.fixture
def fleet() -> Fleet:
    org = new_fleet("Shadowed", devices=0)
    with_thing = register_device(org.org_id, org.owner_id, "mqtt", certificate=True)
    plain = register_device(org.org_id, org.owner_id, "http")
    assert with_thing.thing_name is not None
    return Fleet(
        org.org_id, org.owner_id, with_thing.device_id, with_thing.thing_name, plain.device_id
    )


@pytest.fixture(autouse=True)
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries wait in the queue on AWS; here they are readable at once."""
    monkeypatch.setattr(shadow, "RETRY_DELAY_SECONDS", 0)


def read_shadow(thing: str) -> dict[str, Any]:
    payload = boto3.client("iot-data").get_thing_shadow(thingName=thing, shadowName="config")
    document: dict[str, Any] = json.loads(payload["payload"].read())
    return document


def queued_retries() -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    answer = sqs.receive_message(
        QueueUrl=get_settings().config_shadow_queue_url, MaxNumberOfMessages=10
    )
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def set_config(fleet: Fleet, config: dict[str, Any], device: str | None = None) -> Any:
    return shadow.set_desired_config(
        user_id=fleet.owner, device_id=device or fleet.device, config=config
    )


class Refusing:
    """An IoT Core data plane that answers every call with one error code."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        def refuse(**_: Any) -> Any:
            raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, operation)

        return refuse


# --- desired: Kumo → shadow -------------------------------------------------------------------


def test_set_config_writes_config_and_version_to_the_named_shadow(fleet: Fleet) -> None:
    # When a member sets a config for a device with a thing
    device = set_config(fleet, {"interval_seconds": 30, "led": {"color": "red"}})

    # Then its config shadow holds the whole config and its version
    document = read_shadow(fleet.thing)
    assert document["state"]["desired"] == {
        "config": {"interval_seconds": 30, "led": {"color": "red"}},
        "config_version": 1,
    }
    assert int(device.config_version) == 1
    assert document["state"]["delta"]["config_version"] == 1
    assert queued_retries() == []


def test_set_config_again_replaces_the_config_removing_keys(fleet: Fleet) -> None:
    # Given a config with keys at two levels
    set_config(fleet, {"interval_seconds": 30, "led": {"color": "red", "blink": True}})

    # When the next config leaves some of them out
    set_config(fleet, {"led": {"color": "blue"}, "mode": "eco"})

    # Then the shadow holds exactly the new config (a plain update would have merged)
    desired = read_shadow(fleet.thing)["state"]["desired"]
    assert desired == {"config": {"led": {"color": "blue"}, "mode": "eco"}, "config_version": 2}


def test_set_config_drops_null_values_the_shadow_cannot_hold(fleet: Fleet) -> None:
    set_config(fleet, {"a": 1, "b": None})

    assert read_shadow(fleet.thing)["state"]["desired"]["config"] == {"a": 1}
    # And the table keeps what the user set
    assert service.config_out(service.get_own_device(fleet.device)).config == {"a": 1, "b": None}


def test_sync_leaves_a_shadow_that_already_holds_the_config_alone(fleet: Fleet) -> None:
    set_config(fleet, {"a": 1})
    before = read_shadow(fleet.thing)["version"]

    shadow.sync_config(fleet.device)

    assert read_shadow(fleet.thing)["version"] == before


def test_sync_repairs_a_shadow_someone_else_changed(fleet: Fleet) -> None:
    # Given a shadow whose desired state was overwritten (the device's policy allows it)
    set_config(fleet, {"a": 1})
    boto3.client("iot-data").update_thing_shadow(
        thingName=fleet.thing,
        shadowName="config",
        payload=json.dumps({"state": {"desired": {"config": {"x": 9}, "config_version": 99}}}),
    )

    # When the shadow is synced / Then it holds the table's config and version again
    shadow.sync_config(fleet.device)
    desired = read_shadow(fleet.thing)["state"]["desired"]
    assert desired == {"config": {"a": 1}, "config_version": 1}


def test_sync_that_loses_a_race_reads_again_and_writes_the_latest(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a shadow, and a concurrent writer that changes it between our read and our write
    set_config(fleet, {"a": 1})
    real = boto3.client("iot-data")
    calls: list[int] = []

    class Racing:
        def get_thing_shadow(self, **kwargs: Any) -> Any:
            return real.get_thing_shadow(**kwargs)

        def update_thing_shadow(self, **kwargs: Any) -> Any:
            if not calls:
                real.update_thing_shadow(
                    thingName=fleet.thing,
                    shadowName="config",
                    payload=json.dumps({"state": {"desired": {"other": True}}}),
                )
            calls.append(1)
            return real.update_thing_shadow(**kwargs)

    monkeypatch.setattr(iot, "data_client", Racing)

    # When a new config is set
    set_config(fleet, {"a": 2})

    # Then the first write was refused on the shadow's version (409) and the second landed
    assert len(calls) == 2
    desired = read_shadow(fleet.thing)["state"]["desired"]
    assert desired["config"] == {"a": 2} and desired["config_version"] == 2


def test_set_config_for_a_device_without_a_thing_writes_no_shadow(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(iot, "data_client", lambda: Refusing("ShouldNotBeCalled"))

    device = set_config(fleet, {"a": 1}, device=fleet.plain)

    assert int(device.config_version) == 1
    assert queued_retries() == []


def test_shadow_failure_keeps_the_config_and_queues_a_retry(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, load_event: Callable[[str], dict[str, Any]]
) -> None:
    # Given an IoT Core that is down
    working = iot.data_client
    monkeypatch.setattr(iot, "data_client", lambda: Refusing("ServiceUnavailableException"))

    # When a config is set, the request still succeeds and the config is stored
    device = set_config(fleet, {"interval_seconds": 5})
    assert service.config_out(device).version == 1
    assert json.loads(service.get_own_device(fleet.device).desired_config_json) == {
        "interval_seconds": 5
    }

    # Then a retry names the device, and once IoT Core is back the retry writes the shadow
    (message,) = queued_retries()
    assert message == {"device_id": fleet.device}
    monkeypatch.setattr(iot, "data_client", working)
    event = load_event("devices/config_shadow_retry_message")
    event["Records"][0]["body"] = json.dumps(message)
    handler = load_handler("devices/sync_config_shadow")
    assert handler.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}
    assert read_shadow(fleet.thing)["state"]["desired"]["config_version"] == 1


def test_retry_that_fails_again_goes_back_to_the_queue(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, load_event: Callable[[str], dict[str, Any]]
) -> None:
    monkeypatch.setattr(iot, "data_client", lambda: Refusing("ThrottlingException"))
    event = load_event("devices/config_shadow_retry_message")
    event["Records"][0]["body"] = json.dumps({"device_id": fleet.device})
    set_config(fleet, {"a": 1})

    answer = load_handler("devices/sync_config_shadow").lambda_handler(event, FakeContext())

    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_a_config_the_shadow_refuses_is_not_retried(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A document too large or too deep for a shadow: a retry would be refused the same way
    monkeypatch.setattr(iot, "data_client", lambda: Refusing("RequestEntityTooLargeException"))

    set_config(fleet, {"a": 1})

    assert queued_retries() == []


def test_retry_of_a_deleted_device_is_done(load_event: Callable[[str], dict[str, Any]]) -> None:
    event = load_event("devices/config_shadow_retry_message")  # names no stored device
    answer = load_handler("devices/sync_config_shadow").lambda_handler(event, FakeContext())
    assert answer == {"batchItemFailures": []}


def test_set_config_route_answers_the_new_version(
    fleet: Fleet, call_api: Callable[..., dict[str, Any]]
) -> None:
    answer = call_api(
        "devices/set_device_config",
        "PUT",
        f"/api/v1/devices/{fleet.device}/config",
        resource="/api/v1/devices/{device_id}/config",
        path_parameters={"device_id": fleet.device},
        body={"config": {"interval_seconds": 15}},
        principal=principal_for(fleet.owner),
    )
    assert answer["statusCode"] == 200, answer
    assert answer["json"]["version"] == 1
    assert read_shadow(fleet.thing)["state"]["desired"]["config"] == {"interval_seconds": 15}


def test_another_org_cannot_set_the_config(
    fleet: Fleet, call_api: Callable[..., dict[str, Any]]
) -> None:
    answer = call_api(
        "devices/set_device_config",
        "PUT",
        f"/api/v1/devices/{fleet.device}/config",
        resource="/api/v1/devices/{device_id}/config",
        path_parameters={"device_id": fleet.device},
        body={"config": {"interval_seconds": 15}},
        principal=principal_for(new_id()),
    )
    assert answer["statusCode"] == 404
    assert int(service.get_own_device(fleet.device).config_version) == 0


# --- reported: shadow → Kumo ------------------------------------------------------------------


def rule_record(body: Any, message_id: str = "m-1") -> dict[str, Any]:
    """An SQS record as the config-reports rule leaves it."""
    return {"messageId": message_id, "body": body if isinstance(body, str) else json.dumps(body)}


def report(thing: str, version: Any, config: Any = None, **extra: Any) -> dict[str, Any]:
    body = {"version": version, "thing_name": thing, "received_at": 1} | extra
    if config is not None:
        body["config"] = config
    return rule_record(body)


def recorded(device_id: str) -> tuple[int | None, dict[str, Any] | None]:
    out = service.config_out(service.get_own_device(device_id))
    return out.reported_version, out.reported


def test_report_on_the_shadow_records_the_applied_version(fleet: Fleet) -> None:
    set_config(fleet, {"interval_seconds": 30})

    failed = shadow.ingest_reports([report(fleet.thing, 1, {"interval_seconds": 30})])

    assert failed == []
    assert recorded(fleet.device) == (1, {"interval_seconds": 30})


def test_the_same_report_twice_changes_nothing(fleet: Fleet) -> None:
    set_config(fleet, {"a": 1})
    message = report(fleet.thing, 1, {"a": 1})

    assert shadow.ingest_reports([message, message]) == []

    assert recorded(fleet.device) == (1, {"a": 1})


def test_a_stale_report_is_ignored(fleet: Fleet) -> None:
    # Given version 2 recorded as applied
    set_config(fleet, {"a": 1})
    set_config(fleet, {"a": 2})
    shadow.ingest_reports([report(fleet.thing, 2, {"a": 2})])

    # When the report of version 1 arrives late (SQS reorders)
    assert shadow.ingest_reports([report(fleet.thing, 1, {"a": 1})]) == []

    # Then version 2 stays recorded
    assert recorded(fleet.device) == (2, {"a": 2})


def test_a_report_of_a_version_never_set_is_dropped(fleet: Fleet) -> None:
    set_config(fleet, {"a": 1})

    assert shadow.ingest_reports([report(fleet.thing, 7, {"a": 1})]) == []

    assert recorded(fleet.device) == (None, None)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        {"version": 1, "config": {}},  # no thing
        {"version": "one", "config": {}, "thing_name": "x"},
        {"version": -1, "config": {}, "thing_name": "x"},
        {"version": 1, "thing_name": "x"},  # no config
        {"version": 1, "config": [1], "thing_name": "x"},
    ],
)
def test_unreadable_reports_are_dropped(fleet: Fleet, body: Any) -> None:
    if isinstance(body, dict) and body.get("thing_name") == "x":
        body["thing_name"] = fleet.thing
    set_config(fleet, {"a": 1})

    assert shadow.ingest_reports([rule_record(body)]) == []

    assert recorded(fleet.device) == (None, None)


def test_reports_from_things_that_are_no_devices_own_are_dropped(fleet: Fleet) -> None:
    # Given a config set on both devices
    set_config(fleet, {"a": 1})
    set_config(fleet, {"a": 1}, device=fleet.plain)
    stage = get_settings().stage

    # When reports name a thing the device without a certificate never had, another stage's
    # thing, or a thing name that is no device id at all
    shadow.ingest_reports(
        [
            report(f"kumo-{stage}-{fleet.plain}", 1, {"a": 1}),
            report(f"kumo-other-{fleet.device}", 1, {"a": 1}),
            report(f"kumo-{stage}-", 1, {"a": 1}),
            report("someone-else", 1, {"a": 1}),
        ]
    )

    # Then nothing is recorded for either device
    assert recorded(fleet.plain) == (None, None)
    assert recorded(fleet.device) == (None, None)


def test_reports_of_a_disabled_device_are_dropped(fleet: Fleet) -> None:
    set_config(fleet, {"a": 1})
    service.update_device(
        user_id=fleet.owner, device_id=fleet.device, request=UpdateDeviceRequest(enabled=False)
    )

    shadow.ingest_reports([report(fleet.thing, 1, {"a": 1})])

    assert recorded(fleet.device) == (None, None)


def test_ingest_handler_answers_the_messages_to_retry(
    fleet: Fleet, load_event: Callable[[str], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the sample SQS event, pointed at a real device
    set_config(fleet, {"interval_seconds": 30})
    set_config(fleet, {"interval_seconds": 30, "x": 1})
    set_config(fleet, {"interval_seconds": 30})
    event = load_event("devices/config_report_message")
    record = event["Records"][0]
    record["body"] = json.dumps(json.loads(record["body"]) | {"thing_name": fleet.thing})
    handler = load_handler("devices/ingest_config_reports")

    # When it is handled / Then nothing is retried and version 3 is recorded
    assert handler.lambda_handler(copy.deepcopy(event), FakeContext()) == {"batchItemFailures": []}
    assert recorded(fleet.device) == (3, {"interval_seconds": 30})

    # And a storage failure hands the message back to SQS
    monkeypatch.setattr(service, "report_config", lambda **_: 1 / 0)
    answer = handler.lambda_handler(event, FakeContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}


# --- the HTTP report shares the rules ----------------------------------------------------------


def test_http_report_of_an_older_version_is_ignored(fleet: Fleet) -> None:
    set_config(fleet, {"a": 1}, device=fleet.plain)
    set_config(fleet, {"a": 2}, device=fleet.plain)
    service.report_config(device_id=fleet.plain, version=2, config={"a": 2})

    device = service.report_config(device_id=fleet.plain, version=1, config={"a": 1})

    assert service.config_out(device).reported_version == 2
    assert recorded(fleet.plain) == (2, {"a": 2})


def test_http_report_of_a_version_never_set_is_refused(fleet: Fleet) -> None:
    with pytest.raises(ValidationFailed):
        service.report_config(device_id=fleet.plain, version=1, config={})


def test_thing_names_map_back_to_device_ids_of_this_stage_only() -> None:
    device_id = new_id()
    assert iot.device_id_of(iot.thing_name(device_id)) == device_id
    assert iot.device_id_of(f"kumo-elsewhere-{device_id}") is None
    assert iot.device_id_of(iot.thing_name("")) is None
