"""Device commands under moto: sending and pushing, listing, polling, results, expiry, the
results batch, and the handlers that wire them to routes."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from kumo.core import clock
from kumo.core.config import Settings
from kumo.core.errors import BadRequest, Forbidden, NotFound, ValidationFailed
from kumo.core.ids import first_id_at, new_id
from kumo.devices import commands, iot, service
from kumo.devices.errors import CommandCompleted, CommandExpired
from kumo.devices.models import CommandModel, command_sort_key, device_key
from kumo.devices.schemas import CommandResultRequest, SendCommandRequest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iotdata.models import iotdata_backends
from pydantic import ValidationError

from tests.support.factories import device_principal, new_fleet, principal_for
from tests.unit.conftest import FakeContext, load_handler

PROBLEM = "urn:kumo:problem:"
HISTORY = 30 * 86_400


@dataclass(frozen=True)
class Org:
    org_id: str
    owner: str
    member: str
    viewer: str
    device: str
    other_device: str


def new_org(name: str = "Fleet") -> Org:
    """An org with an owner, a member, a viewer and two devices."""
    fleet = new_fleet(name, devices=2)
    member, viewer = fleet.member("member"), fleet.member("viewer")
    return Org(
        fleet.org_id,
        fleet.owner_id,
        member["subject_id"],
        viewer["subject_id"],
        fleet.devices[0],
        fleet.devices[1],
    )


@pytest.fixture(autouse=True)
def info_logs() -> Iterator[None]:
    """Log at INFO as deployed: a log call with a bad field fails only when it is emitted."""
    level = commands.logger.log_level
    commands.logger.setLevel(logging.INFO)
    yield
    commands.logger.setLevel(level)


@pytest.fixture
def fleet(aws: None) -> Org:
    return new_org()


@pytest.fixture
def published() -> Callable[[], list[tuple[str, dict[str, Any]]]]:
    """What was published to IoT Core in this test: (topic, decoded payload)."""

    def read() -> list[tuple[str, dict[str, Any]]]:
        backend = iotdata_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        return [(topic, json.loads(payload)) for topic, payload in backend.published_payloads]

    return read


@pytest.fixture
def move_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Move Kumo's clock `seconds` ahead of the wall clock."""

    def move(seconds: float) -> None:
        monkeypatch.setattr(clock, "now", lambda: time.time() + seconds)

    return move


def send(org: Org, name: str = "reboot", **fields: Any) -> CommandModel:
    return commands.send_command(
        user_id=org.member,
        device_id=fields.pop("device_id", org.device),
        request=SendCommandRequest(name=name, **fields),
    )


def report(org: Org, command: CommandModel, status: str, **fields: Any) -> CommandModel:
    return commands.report_result(
        device_id=fields.pop("device_id", org.device),
        command_id=command.command_id,
        request=CommandResultRequest(status=status, **fields),  # type: ignore[arg-type]
    )


def stored(command: CommandModel) -> CommandModel:
    return CommandModel.get(device_key(command.device_id), command_sort_key(command.command_id))


# --- sending ----------------------------------------------------------------------------------


def test_send_command_stores_it_queued_and_pushes_it_on_the_commands_topic(
    fleet: Org, published: Callable[[], list[tuple[str, dict[str, Any]]]]
) -> None:
    # Given a member of the device's org
    # When they send a command
    command = send(fleet, "set.interval", params={"seconds": 30}, ttl_seconds=60)

    # Then it is stored queued, expiring after its time to live, kept a month longer
    saved = stored(command)
    assert saved.status == "queued" and saved.created_by == fleet.member
    assert saved.org_id == fleet.org_id and json.loads(saved.params_json) == {"seconds": 30}
    created = saved.created_at.replace("Z", "+00:00")
    expires = saved.expires_at_iso.replace("Z", "+00:00")
    ttl = datetime.fromisoformat(expires) - datetime.fromisoformat(created)
    assert ttl.total_seconds() == 60
    assert abs(saved.expires_at - (datetime.fromisoformat(expires).timestamp() + HISTORY)) <= 1
    # And it went out at QoS 1 on the device's commands topic
    assert published() == [
        (
            f"kumo/{fleet.org_id}/{fleet.device}/commands",
            {
                "id": command.command_id,
                "name": "set.interval",
                "params": {"seconds": 30},
                "expires_at": saved.expires_at_iso,
            },
        )
    ]


def test_send_command_defaults_to_empty_params_and_five_minutes(fleet: Org) -> None:
    request = SendCommandRequest(name="ping")
    assert request.params == {} and request.ttl_seconds == 300


@pytest.mark.parametrize("ttl", [9, 86_401])
def test_send_command_time_to_live_is_10_s_to_a_day(ttl: int) -> None:
    with pytest.raises(ValidationError):
        SendCommandRequest(name="ping", ttl_seconds=ttl)


@pytest.mark.parametrize("name", ["Reboot", "1st", "", "a b", "x" * 65, "reboot\n", "é"])
def test_send_command_name_must_be_lowercase_token(name: str) -> None:
    with pytest.raises(ValidationError):
        SendCommandRequest(name=name)


def test_send_command_name_allows_dots_dashes_underscores_up_to_64() -> None:
    assert SendCommandRequest(name="a" + "b.c-d_9" * 9).name.startswith("ab.c")


def test_send_command_params_over_8_kib_are_refused(fleet: Org) -> None:
    with pytest.raises(ValidationFailed) as refused:
        send(fleet, params={"blob": "x" * 8200})
    assert refused.value.extra["errors"][0]["field"] == "params"


def test_send_command_needs_the_member_role(fleet: Org) -> None:
    with pytest.raises(Forbidden):
        commands.send_command(
            user_id=fleet.viewer, device_id=fleet.device, request=SendCommandRequest(name="ping")
        )


def test_send_command_to_another_orgs_device_is_not_found(fleet: Org) -> None:
    stranger = new_org("Other")
    with pytest.raises(NotFound):
        commands.send_command(
            user_id=stranger.owner, device_id=fleet.device, request=SendCommandRequest(name="p")
        )


def test_send_command_push_failure_leaves_it_queued_for_polling(
    fleet: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an IoT Core that refuses the publish
    class Refusing:
        def publish(self, **_: Any) -> None:
            raise ClientError({"Error": {"Code": "ServiceUnavailable"}}, "Publish")

    monkeypatch.setattr(commands, "_iot_data", Refusing)

    # When a command is sent, the request still succeeds
    command = send(fleet)

    # Then the device gets it by polling
    assert stored(command).status == "queued"
    assert [c.command_id for c in commands.pending_commands(fleet.device)] == [command.command_id]


@pytest.fixture
def fresh_iot_data_client() -> Iterator[None]:
    commands._iot_data.cache_clear()
    yield
    commands._iot_data.cache_clear()


def test_iot_data_client_uses_the_configured_data_endpoint(
    fresh_iot_data_client: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the deployment names the account's data endpoint (and no engine is in between)
    host = "abc123-ats.iot.us-east-1.amazonaws.com"
    settings = Settings()
    settings.iot_data_endpoint = host  # an instance value wins over the variable
    monkeypatch.setattr(iot, "get_settings", lambda: settings)
    # Then the client talks to it over HTTPS
    assert commands._iot_data().meta.endpoint_url == f"https://{host}"


def test_iot_data_client_leaves_the_endpoint_to_aws_endpoint_url(
    fresh_iot_data_client: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the local engine's AWS_ENDPOINT_URL and a configured data endpoint
    settings = Settings()
    settings.iot_data_endpoint = "abc-ats.iot.example"  # an instance value wins over the variable
    monkeypatch.setattr(iot, "get_settings", lambda: settings)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    # Then boto3's own variable wins
    assert commands._iot_data().meta.endpoint_url == "http://127.0.0.1:4566"


# --- listing and reading ------------------------------------------------------------------------


def test_list_commands_is_newest_first_in_pages(fleet: Org) -> None:
    sent = [send(fleet, f"step{n}").command_id for n in range(3)]
    first, cursor = commands.list_commands(
        user_id=fleet.viewer, device_id=fleet.device, status=None, limit=2, cursor=None
    )
    rest, end = commands.list_commands(
        user_id=fleet.viewer, device_id=fleet.device, status=None, limit=2, cursor=cursor
    )
    assert [c.command_id for c in first + rest] == sent[::-1]
    assert cursor is not None and end is None


def test_list_commands_cursor_of_another_device_is_refused(fleet: Org) -> None:
    send(fleet)
    send(fleet)
    _, cursor = commands.list_commands(
        user_id=fleet.owner, device_id=fleet.device, status=None, limit=1, cursor=None
    )
    with pytest.raises(BadRequest):
        commands.list_commands(
            user_id=fleet.owner, device_id=fleet.other_device, status=None, limit=1, cursor=cursor
        )


def test_list_commands_filters_by_status_as_it_reads_now(
    fleet: Org, move_clock: Callable[[float], None]
) -> None:
    # Given commands succeeded, delivered with a short and a long life, and queued
    done = send(fleet, "done")
    report(fleet, done, "succeeded")
    lapsing = send(fleet, "lapsing", ttl_seconds=10)
    waiting = send(fleet, "waiting", ttl_seconds=600)
    commands.pending_commands(fleet.device)
    fresh = send(fleet, "fresh", ttl_seconds=600)

    def listed(status: Any) -> list[str]:
        found, _ = commands.list_commands(
            user_id=fleet.viewer, device_id=fleet.device, status=status, limit=None, cursor=None
        )
        return [c.command_id for c in found]

    # When the clock passes the short time to live
    move_clock(11)

    # Then the lapsed one lists as expired although no one wrote that down yet
    assert listed("expired") == [lapsing.command_id]
    assert listed("delivered") == [waiting.command_id]
    assert listed("succeeded") == [done.command_id]
    assert listed("queued") == [fresh.command_id]


def test_get_command_past_expiry_reads_and_stays_expired(
    fleet: Org, move_clock: Callable[[float], None]
) -> None:
    command = send(fleet, ttl_seconds=10)
    move_clock(11)
    seen = commands.get_command(
        user_id=fleet.viewer, device_id=fleet.device, command_id=command.command_id
    )
    assert seen.status == "expired"
    assert stored(command).status == "expired"


def test_get_command_is_not_found_for_strangers_and_through_another_device(fleet: Org) -> None:
    command = send(fleet)
    stranger = new_org("Other")
    with pytest.raises(NotFound):
        commands.get_command(
            user_id=stranger.owner, device_id=fleet.device, command_id=command.command_id
        )
    with pytest.raises(NotFound):
        commands.get_command(
            user_id=fleet.owner, device_id=fleet.other_device, command_id=command.command_id
        )
    with pytest.raises(NotFound):
        commands.get_command(user_id=fleet.owner, device_id=fleet.device, command_id="nope")


def test_list_commands_of_another_orgs_device_is_not_found(fleet: Org) -> None:
    stranger = new_org("Other")
    with pytest.raises(NotFound):
        commands.list_commands(
            user_id=stranger.owner, device_id=fleet.device, status=None, limit=None, cursor=None
        )


# --- polling --------------------------------------------------------------------------------------


def test_pending_commands_are_oldest_first_and_become_delivered(fleet: Org) -> None:
    first, second = send(fleet, "first"), send(fleet, "second")
    pending = commands.pending_commands(fleet.device)
    assert [c.command_id for c in pending] == [first.command_id, second.command_id]
    assert all(stored(c).status == "delivered" and stored(c).delivered_at for c in pending)


def test_pending_commands_come_again_until_answered(fleet: Org) -> None:
    # A device may lose what it polled: delivered commands stay pending until a result
    command = send(fleet)
    commands.pending_commands(fleet.device)
    assert [c.command_id for c in commands.pending_commands(fleet.device)] == [command.command_id]
    report(fleet, command, "succeeded")
    assert commands.pending_commands(fleet.device) == []


def test_pending_commands_leave_out_expired_ones_and_mark_them(
    fleet: Org, move_clock: Callable[[float], None]
) -> None:
    short, long = send(fleet, "short", ttl_seconds=10), send(fleet, "long", ttl_seconds=600)
    move_clock(11)
    assert [c.command_id for c in commands.pending_commands(fleet.device)] == [long.command_id]
    assert stored(short).status == "expired"


def test_pending_commands_are_at_most_20(fleet: Org) -> None:
    sent = [send(fleet, f"c{n}").command_id for n in range(23)]
    assert [c.command_id for c in commands.pending_commands(fleet.device)] == sent[:20]
    assert [c.command_id for c in commands.pending_commands(fleet.device)] == sent[:20]
    report(fleet, stored_by_id(fleet.device, sent[0]), "succeeded")
    assert len(commands.pending_commands(fleet.device)) == 20


def stored_by_id(device_id: str, command_id: str) -> CommandModel:
    return CommandModel.get(device_key(device_id), command_sort_key(command_id))


def test_pending_commands_are_the_devices_own_only(fleet: Org) -> None:
    send(fleet)
    assert commands.pending_commands(fleet.other_device) == []


def test_first_id_at_bounds_the_ids_minted_since() -> None:
    before = first_id_at(time.time() - 1)
    minted = new_id()
    assert before < minted < first_id_at(time.time() + 1)


# --- results --------------------------------------------------------------------------------------


def test_report_result_records_success_and_its_result(fleet: Org) -> None:
    command = send(fleet)
    report(fleet, command, "succeeded", result={"uptime": 3})
    saved = stored(command)
    assert saved.status == "succeeded" and json.loads(saved.result_json or "") == {"uptime": 3}
    assert saved.completed_at and saved.delivered_at  # a result implies delivery


def test_report_result_records_failure_and_its_error(fleet: Org) -> None:
    command = send(fleet)
    report(fleet, command, "failed", error="disk full")
    saved = stored(command)
    assert saved.status == "failed" and saved.error == "disk full" and saved.result_json is None


def test_report_delivered_acknowledges_a_queued_command(fleet: Org) -> None:
    command = send(fleet)
    assert report(fleet, command, "delivered").status == "delivered"
    assert stored(command).delivered_at


def test_report_same_final_result_again_changes_nothing(fleet: Org) -> None:
    command = send(fleet)
    first = report(fleet, command, "succeeded", result={"ok": 1})
    again = report(fleet, command, "succeeded", result={"ok": 1})
    assert again.status == "succeeded" and again.completed_at == first.completed_at


def test_report_different_final_result_after_a_final_one_conflicts(fleet: Org) -> None:
    command = send(fleet)
    report(fleet, command, "succeeded", result={"ok": 1})
    for status, fields in (("failed", {}), ("succeeded", {"result": {"ok": 2}})):
        with pytest.raises(CommandCompleted) as refused:
            report(fleet, command, status, **fields)
        assert refused.value.status == 409
    assert json.loads(stored(command).result_json or "") == {"ok": 1}


def test_report_delivered_after_a_final_result_is_ignored(fleet: Org) -> None:
    # Results come through SQS, which may reorder: a late acknowledgement changes nothing
    command = send(fleet)
    report(fleet, command, "failed", error="nope")
    assert report(fleet, command, "delivered").status == "failed"


def test_report_result_after_expiry_is_refused_and_expires_it(
    fleet: Org, move_clock: Callable[[float], None]
) -> None:
    command = send(fleet, ttl_seconds=10)
    commands.pending_commands(fleet.device)
    move_clock(11)
    with pytest.raises(CommandExpired) as refused:
        report(fleet, command, "succeeded")
    assert refused.value.status == 409 and refused.value.slug == "command-expired"
    assert stored(command).status == "expired"
    with pytest.raises(CommandExpired):  # and so it stays
        report(fleet, command, "delivered")


def test_report_result_before_expiry_stands_after_it(
    fleet: Org, move_clock: Callable[[float], None]
) -> None:
    command = send(fleet, ttl_seconds=10)
    report(fleet, command, "succeeded")
    move_clock(11)
    assert report(fleet, command, "succeeded").status == "succeeded"
    assert (
        commands.get_command(
            user_id=fleet.viewer, device_id=fleet.device, command_id=command.command_id
        ).status
        == "succeeded"
    )


def test_report_result_for_another_devices_command_is_not_found(fleet: Org) -> None:
    command = send(fleet)
    with pytest.raises(NotFound):
        report(fleet, command, "succeeded", device_id=fleet.other_device)
    assert stored(command).status == "queued"


def test_report_result_over_8_kib_is_refused(fleet: Org) -> None:
    command = send(fleet)
    with pytest.raises(ValidationFailed) as refused:
        report(fleet, command, "succeeded", result={"log": "x" * 8200})
    assert refused.value.extra["errors"][0]["field"] == "result"


def test_report_delivered_with_a_result_is_refused(fleet: Org) -> None:
    command = send(fleet)
    with pytest.raises(ValidationFailed):
        report(fleet, command, "delivered", result={"early": True})


def test_report_error_is_at_most_512_characters() -> None:
    with pytest.raises(ValidationError):
        CommandResultRequest(status="failed", error="e" * 513)


def test_report_result_that_lost_a_race_is_decided_on_the_winner(
    fleet: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a result read as queued, while another result was recorded meanwhile
    command = send(fleet)
    stale = stored(command)
    report(fleet, command, "succeeded", result={"by": "first"})
    monkeypatch.setattr(commands, "_find", lambda *_: stale)

    # When a different result tries to land on the stale copy
    # Then the conditional write fails and the recorded result wins
    with pytest.raises(CommandCompleted):
        report(fleet, command, "succeeded", result={"by": "second"})
    assert json.loads(stored(command).result_json or "") == {"by": "first"}


# --- results over MQTT: the rule's SQS batch ------------------------------------------------------


def rule_record(message: dict[str, Any], message_id: str = "m-1") -> dict[str, Any]:
    """An SQS record as the results rule makes it: the device's JSON plus the envelope."""
    return {"messageId": message_id, "body": json.dumps(message)}


def rule_message(org: Org, command: CommandModel, **fields: Any) -> dict[str, Any]:
    return {
        "id": command.command_id,
        "org_id": org.org_id,
        "device_id": org.device,
        "received_at": int(time.time() * 1000),
        **fields,
    }


def test_ingest_results_records_a_result(fleet: Org) -> None:
    command = send(fleet)
    failed = commands.ingest_results(
        [rule_record(rule_message(fleet, command, status="succeeded", result={"v": 1}))]
    )
    assert failed == []
    assert stored(command).status == "succeeded"


def test_ingest_results_drops_what_cannot_be_recorded(fleet: Org) -> None:
    # Given messages that are unreadable, spoof another org or device, or are refused
    command = send(fleet)
    other = new_org("Other")
    records = [
        {"messageId": "junk", "body": "not json"},
        rule_record({"org_id": fleet.org_id, "device_id": fleet.device}, "no-id"),
        rule_record(rule_message(fleet, command, status="done"), "bad-status"),
        rule_record(rule_message(fleet, command, status="succeeded", extra=1), "unknown-field"),
        rule_record(
            rule_message(fleet, command, status="succeeded") | {"org_id": other.org_id}, "spoof"
        ),
        rule_record(
            rule_message(fleet, command, status="succeeded") | {"device_id": fleet.other_device},
            "other-device",
        ),
        rule_record(rule_message(fleet, command, status="succeeded") | {"id": new_id()}, "gone"),
    ]
    # When the batch is ingested
    failed = commands.ingest_results(records)
    # Then none is retried and the command is untouched
    assert failed == []
    assert stored(command).status == "queued"


def test_ingest_results_retries_only_unexpected_errors(
    fleet: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = send(fleet)

    def broken(**_: Any) -> None:
        raise RuntimeError("DynamoDB is having a day")

    monkeypatch.setattr(commands, "report_result", broken)
    failed = commands.ingest_results(
        [
            rule_record(rule_message(fleet, command, status="succeeded"), "retry-me"),
            {"messageId": "junk", "body": "[]"},
        ]
    )
    assert failed == ["retry-me"]


def test_ingest_results_drops_results_of_a_disabled_device(fleet: Org) -> None:
    command = send(fleet)
    from kumo.devices.schemas import UpdateDeviceRequest

    service.update_device(
        user_id=fleet.owner, device_id=fleet.device, request=UpdateDeviceRequest(enabled=False)
    )
    commands.ingest_results([rule_record(rule_message(fleet, command, status="succeeded"))])
    assert stored(command).status == "queued"


def test_ingest_handler_answers_the_messages_to_retry(
    fleet: Org, load_event: Callable[[str], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the sample SQS event, pointed at a real command
    command = send(fleet)
    event = load_event("devices/command_result_message")
    record = event["Records"][0]
    body = json.loads(record["body"]) | {
        "id": command.command_id,
        "org_id": fleet.org_id,
        "device_id": fleet.device,
    }
    ok_event = copy.deepcopy(event)
    ok_event["Records"][0]["body"] = json.dumps(body)
    handler = load_handler("devices/ingest_command_results")

    # When it is handled / Then nothing is retried and the result is recorded
    assert handler.lambda_handler(ok_event, FakeContext()) == {"batchItemFailures": []}
    assert json.loads(stored(command).result_json or "") == {"rebooted": True}

    # And a storage failure hands the message back to SQS
    monkeypatch.setattr(commands, "report_result", lambda **_: 1 / 0)
    answer = handler.lambda_handler(ok_event, FakeContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}


# --- the routes -----------------------------------------------------------------------------------


def test_routes_round_trip_a_command_over_http_polling(
    fleet: Org, call_api: Callable[..., dict[str, Any]]
) -> None:
    user = principal_for(fleet.member)
    device = device_principal(fleet.device, fleet.org_id)
    base = f"/api/v1/devices/{fleet.device}/commands"

    sent = call_api(
        "devices/send_device_command",
        "POST",
        base,
        resource="/api/v1/devices/{device_id}/commands",
        body={"name": "reboot", "params": {"delay": 5}},
        principal=user,
    )
    assert sent["statusCode"] == 201, sent
    command_id = sent["json"]["id"]
    assert sent["json"]["status"] == "queued" and sent["json"]["params"] == {"delay": 5}

    polled = call_api(
        "devices/device_pending_commands", "GET", "/api/v1/device/commands", principal=device
    )
    assert polled["statusCode"] == 200
    assert [(c["id"], c["status"]) for c in polled["json"]["items"]] == [(command_id, "delivered")]

    answered = call_api(
        "devices/device_report_command_result",
        "POST",
        f"/api/v1/device/commands/{command_id}/result",
        resource="/api/v1/device/commands/{command_id}/result",
        body={"status": "succeeded", "result": {"ok": True}},
        principal=device,
    )
    assert answered["statusCode"] == 200 and answered["json"]["status"] == "succeeded"

    got = call_api(
        "devices/get_device_command",
        "GET",
        f"{base}/{command_id}",
        resource="/api/v1/devices/{device_id}/commands/{command_id}",
        principal=principal_for(fleet.viewer),
    )
    assert got["statusCode"] == 200
    assert got["json"]["result"] == {"ok": True} and got["json"]["completed_at"]

    listed = call_api(
        "devices/list_device_commands",
        "GET",
        base,
        resource="/api/v1/devices/{device_id}/commands",
        query={"status": "succeeded"},
        principal=principal_for(fleet.viewer),
    )
    assert [c["id"] for c in listed["json"]["items"]] == [command_id]


def test_routes_refuse_a_bad_name_with_422(
    fleet: Org, call_api: Callable[..., dict[str, Any]]
) -> None:
    answer = call_api(
        "devices/send_device_command",
        "POST",
        f"/api/v1/devices/{fleet.device}/commands",
        resource="/api/v1/devices/{device_id}/commands",
        body={"name": "Reboot Now"},
        principal=principal_for(fleet.member),
    )
    assert answer["statusCode"] == 422
    assert answer["json"]["errors"][0]["field"] == "name"


def test_routes_answer_expired_results_with_the_expired_problem(
    fleet: Org, call_api: Callable[..., dict[str, Any]], move_clock: Callable[[float], None]
) -> None:
    command = send(fleet, ttl_seconds=10)
    move_clock(11)
    answer = call_api(
        "devices/device_report_command_result",
        "POST",
        f"/api/v1/device/commands/{command.command_id}/result",
        resource="/api/v1/device/commands/{command_id}/result",
        body={"status": "succeeded"},
        principal=device_principal(fleet.device, fleet.org_id),
    )
    assert answer["statusCode"] == 409
    assert answer["json"]["type"] == f"{PROBLEM}command-expired"


def test_routes_keep_devices_and_users_apart(
    fleet: Org, call_api: Callable[..., dict[str, Any]]
) -> None:
    command = send(fleet)
    # Another device's key cannot answer it
    answer = call_api(
        "devices/device_report_command_result",
        "POST",
        f"/api/v1/device/commands/{command.command_id}/result",
        resource="/api/v1/device/commands/{command_id}/result",
        body={"status": "succeeded"},
        principal=device_principal(fleet.other_device, fleet.org_id),
    )
    assert answer["statusCode"] == 404
    # A device cannot use the user routes, nor a user the device routes
    as_device = call_api(
        "devices/send_device_command",
        "POST",
        f"/api/v1/devices/{fleet.device}/commands",
        resource="/api/v1/devices/{device_id}/commands",
        body={"name": "ping"},
        principal=device_principal(fleet.device, fleet.org_id),
    )
    as_user = call_api(
        "devices/device_pending_commands",
        "GET",
        "/api/v1/device/commands",
        principal=principal_for(fleet.owner),
    )
    assert as_device["statusCode"] == 403 and as_user["statusCode"] == 403


def test_send_command_is_limited_per_user(fleet: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a user allowed two commands a minute
    from kumo.core import abuse_limits
    from kumo.core.rate_limit import Limit, RateLimited

    monkeypatch.setattr(
        abuse_limits, "COMMAND_PER_USER", Limit("command.user", 2, 60, "device commands")
    )
    send(fleet)
    send(fleet)

    # When a third is sent, it is refused and nothing is stored
    with pytest.raises(RateLimited):
        send(fleet)
    from kumo.devices.models import COMMAND_PREFIX

    stored = CommandModel.query(
        device_key(fleet.device), CommandModel.sk.startswith(COMMAND_PREFIX)
    )
    assert len(list(stored)) == 2
