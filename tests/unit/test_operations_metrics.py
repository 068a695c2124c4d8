"""The operations metrics each function prints (EMF): telemetry, connectivity, commands,
webhooks and mail, read back from the handler's standard output."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from kumo.core import clock, metrics
from kumo.core.config import get_settings
from kumo.core.ids import new_id
from kumo.devices import commands, status
from kumo.devices.schemas import CommandResultRequest, SendCommandRequest
from kumo.tasks import scheduled_tasks
from kumo.tasks import service as tasks
from kumo.tasks.schemas import CreateScheduledTaskRequest

from infra.local.receiver import Receiver
from tests.support.factories import device_principal, new_fleet
from tests.unit.conftest import QUEUE_URL, WEBHOOK_QUEUE_URL, FakeContext, load_handler
from tests.unit.test_core_metrics import emf_documents, total


@pytest.fixture(autouse=True)
def nothing_pending(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Counts left by earlier tests that called services without a handler are not ours.

    Every test here drives a handler against the tables and queues, so all ask for moto."""
    metrics.flush()
    capsys.readouterr()


@pytest.fixture
def printed(capsys: pytest.CaptureFixture[str]) -> Callable[[], dict[str, float]]:
    """Every metric printed since the last call, summed by name over the EMF lines."""

    def read() -> dict[str, float]:
        sums: dict[str, float] = {}
        for document in emf_documents(capsys.readouterr().out):
            (directive,) = document["_aws"]["CloudWatchMetrics"]
            for metric in directive["Metrics"]:
                sums[metric["Name"]] = sums.get(metric["Name"], 0) + total(document, metric["Name"])
        return sums

    return read


def a_fleet(devices: int = 1) -> tuple[str, str, list[str]]:
    """An org, its owner and its registered devices."""
    fleet = new_fleet(devices=devices)
    return fleet.org_id, fleet.owner_id, list(fleet.devices)


def telemetry_record(message_id: str, body: Any) -> dict[str, Any]:
    return {"messageId": message_id, "body": body if isinstance(body, str) else json.dumps(body)}


# --- telemetry --------------------------------------------------------------------------------


def test_ingest_telemetry_counts_accepted_rejected_and_dropped(
    printed: Callable[[], dict[str, float]],
) -> None:
    # Given a batch with two good readings, one bad one, and a message from no known device
    org_id, _, (device_id,) = a_fleet()
    good_and_bad = {
        "org_id": org_id,
        "device_id": device_id,
        "readings": [
            {"metrics": {"temp": 20.5}},
            {"metrics": {"temp": 21.0}, "ts": int(clock.now() * 1000) - 1},
            {"metrics": {"temp": "hot"}},
        ],
    }
    stranger = {"org_id": org_id, "device_id": new_id(), "metrics": {"temp": 1}}
    event = {"Records": [telemetry_record("m1", good_and_bad), telemetry_record("m2", stranger)]}

    # When the ingestion function handles it
    load_handler("telemetry/ingest_telemetry").lambda_handler(event, FakeContext())

    # Then its EMF line counts them
    counted = printed()
    assert counted["ReadingsAccepted"] == 2
    assert counted["ReadingsRejected"] == 1
    assert counted["TelemetryMessagesDropped"] == 1


def test_ingest_telemetry_counts_a_redelivered_batch_as_duplicates(
    printed: Callable[[], dict[str, float]],
) -> None:
    # Given a batch already stored once
    org_id, _, (device_id,) = a_fleet()
    now_ms = int(clock.now() * 1000)
    message = {"org_id": org_id, "device_id": device_id, "metrics": {"temp": 20}, "ts": now_ms}
    event = {"Records": [telemetry_record("m1", message)]}
    handler = load_handler("telemetry/ingest_telemetry").lambda_handler
    handler(event, FakeContext())
    printed()

    # When SQS delivers it again
    handler(event, FakeContext())

    # Then nothing more is accepted and the reading counts as a duplicate
    counted = printed()
    assert counted["ReadingsAccepted"] == 0
    assert counted["ReadingsDuplicate"] == 1


def test_device_post_readings_counts_through_the_http_handler(
    call_api: Callable[..., dict[str, Any]], printed: Callable[[], dict[str, float]]
) -> None:
    # Given a device posting one good and one bad reading
    org_id, _, (device_id,) = a_fleet()
    body = {"readings": [{"metrics": {"temp": 20}}, {"metrics": {}}]}

    # When the HTTP ingestion route handles it
    response = call_api(
        "telemetry/device_post_readings",
        "POST",
        "/api/v1/device/readings",
        body=body,
        principal=device_principal(device_id, org_id),
    )

    # Then the answer and the metrics agree
    assert response["statusCode"] == 202
    assert printed() == {"ReadingsAccepted": 1, "ReadingsRejected": 1}


def test_device_post_readings_answers_and_counts_a_conflicting_value(
    call_api: Callable[..., dict[str, Any]], printed: Callable[[], dict[str, float]]
) -> None:
    # Given a device that stored temp 20 at an instant
    org_id, _, (device_id,) = a_fleet()
    now_ms = int(clock.now() * 1000)
    principal = device_principal(device_id, org_id)

    def post(body: Any) -> dict[str, Any]:
        return call_api(
            "telemetry/device_post_readings",
            "POST",
            "/api/v1/device/readings",
            body=body,
            principal=principal,
        )

    post({"ts": now_ms, "metrics": {"temp": 20}})
    printed()

    # When it posts a bad reading, the stored one again, the instant with another value, and a
    # new reading
    response = post(
        {
            "readings": [
                {"metrics": {}},
                {"ts": now_ms, "metrics": {"temp": 20}},
                {"ts": now_ms, "metrics": {"temp": 25}},
                {"ts": now_ms + 1, "metrics": {"temp": 21}},
            ]
        }
    )

    # Then the answer names the conflicting reading by its index in the payload, with a reason
    body = json.loads(response["body"])
    assert response["statusCode"] == 202
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    assert [entry["index"] for entry in body["rejected"]] == [0, 2]
    assert body["rejected"][1]["reason"].startswith("conflicting value: metric 'temp' at ")
    assert "already holds 20; 25 was not stored" in body["rejected"][1]["reason"]
    # And the metrics count it apart from the validation refusals
    assert printed() == {
        "ReadingsAccepted": 1,
        "ReadingsDuplicate": 1,
        "ReadingsRejected": 1,
        "ReadingsConflicting": 1,
    }


def test_device_post_readings_counts_rejections_of_a_refused_payload(
    call_api: Callable[..., dict[str, Any]], printed: Callable[[], dict[str, float]]
) -> None:
    # Given a payload with no valid reading at all
    org_id, _, (device_id,) = a_fleet()

    # When it is posted
    response = call_api(
        "telemetry/device_post_readings",
        "POST",
        "/api/v1/device/readings",
        body={"readings": [{"metrics": {}}, {"metrics": {"t": "x"}}]},
        principal=device_principal(device_id, org_id),
    )

    # Then it is refused, and both readings count as rejected
    assert response["statusCode"] == 422
    assert printed() == {"ReadingsRejected": 2}


# --- connectivity -----------------------------------------------------------------------------


def test_mark_offline_counts_the_devices_still_online(
    monkeypatch: pytest.MonkeyPatch, printed: Callable[[], dict[str, float]]
) -> None:
    # Given three devices seen now, then two of them seen again after the silence
    _, _, devices = a_fleet(devices=3)
    status.mark_seen(set(devices))
    later = time.time() + get_settings().device_offline_seconds + 1
    monkeypatch.setattr(clock, "now", lambda: later)
    status.mark_seen(set(devices[:2]))
    printed()

    # When the offline job runs
    result = load_handler("devices/mark_offline").lambda_handler({}, FakeContext())

    # Then one is marked offline and two are counted online
    assert result["online"] == 2
    assert printed() == {"DevicesMarkedOffline": 1, "DevicesOnline": 2}


# --- commands ---------------------------------------------------------------------------------


def test_commands_count_sent_succeeded_and_failed(
    printed: Callable[[], dict[str, float]],
) -> None:
    # Given two commands sent to a device
    _, owner, (device_id,) = a_fleet()
    sent = [
        commands.send_command(
            user_id=owner, device_id=device_id, request=SendCommandRequest(name="reboot")
        )
        for _ in range(2)
    ]

    # When the device reports one done and one failed, and the first one again (a redelivery)
    for command, outcome in ((sent[0], "succeeded"), (sent[1], "failed"), (sent[0], "succeeded")):
        commands.report_result(
            device_id=device_id,
            command_id=command.command_id,
            request=CommandResultRequest(status=outcome),  # type: ignore[arg-type]
        )
    metrics.flush()

    # Then each is counted once
    assert printed() == {"CommandsSent": 2, "CommandsSucceeded": 1, "CommandsFailed": 1}


def test_command_result_handler_flushes_the_success(
    call_api: Callable[..., dict[str, Any]], printed: Callable[[], dict[str, float]]
) -> None:
    # Given a command sent to a device
    org_id, owner, (device_id,) = a_fleet()
    command = commands.send_command(
        user_id=owner, device_id=device_id, request=SendCommandRequest(name="reboot")
    )
    metrics.flush()
    printed()

    # When the device reports success over HTTP
    call_api(
        "devices/device_report_command_result",
        "POST",
        f"/api/v1/device/commands/{command.command_id}/result",
        resource="/api/v1/device/commands/{command_id}/result",
        path_parameters={"command_id": command.command_id},
        body={"status": "succeeded"},
        principal=device_principal(device_id, org_id),
    )

    # Then the function printed it
    assert printed() == {"CommandsSucceeded": 1}


def test_command_expiry_is_counted_once_when_first_read(
    monkeypatch: pytest.MonkeyPatch, printed: Callable[[], dict[str, float]]
) -> None:
    # Given a command whose time to live has passed
    _, owner, (device_id,) = a_fleet()
    command = commands.send_command(
        user_id=owner,
        device_id=device_id,
        request=SendCommandRequest(name="reboot", ttl_seconds=10),
    )
    metrics.flush()
    printed()
    later = time.time() + 11
    monkeypatch.setattr(clock, "now", lambda: later)

    # When it is read twice
    for _ in range(2):
        commands.get_command(user_id=owner, device_id=device_id, command_id=command.command_id)
    metrics.flush()

    # Then the expiry is counted once
    assert printed() == {"CommandsExpired": 1}


# --- webhooks ---------------------------------------------------------------------------------


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A local webhook target; calls to 127.0.0.1 allowed, as on the local stack."""
    monkeypatch.setenv("WEBHOOK_ALLOW_LOOPBACK", "true")
    get_settings.cache_clear()
    started = Receiver().start()
    yield started
    started.stop()
    monkeypatch.undo()
    get_settings.cache_clear()


def webhook_record(receiver: Receiver, path: str, *, receive_count: int = 1) -> dict[str, Any]:
    """The SQS record of one queued run of a new scheduled task calling `path`."""
    request = CreateScheduledTaskRequest(
        url=f"{receiver.base}{path}", name="metrics", schedule="0 0 1 1 *"
    )
    task, _ = scheduled_tasks.create_task(owner_id=new_id(), request=request)
    scheduled_tasks.send_run(
        task_id=task.task_id, slot="2090-01-01T10:05:00.000Z", trigger="schedule"
    )
    (message,) = boto3.client("sqs").receive_message(QueueUrl=WEBHOOK_QUEUE_URL)["Messages"]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {"ApproximateReceiveCount": str(receive_count)},
        "eventSource": "aws:sqs",
    }


@pytest.mark.parametrize(
    ("path", "receive_count", "expected"),
    [
        ("/hook", 1, "WebhooksSucceeded"),
        ("/hook/status/500", 1, "WebhooksRetried"),
        ("/hook/status/400", 1, "WebhooksFailed"),
        ("/hook/status/500", 5, "WebhooksFailed"),
    ],
)
def test_webhook_worker_counts_each_outcome(
    receiver: Receiver,
    printed: Callable[[], dict[str, float]],
    path: str,
    receive_count: int,
    expected: str,
) -> None:
    # Given one queued run whose target answers as `path` says, on its `receive_count`th receive
    record = webhook_record(receiver, path, receive_count=receive_count)
    assert receive_count < 5 or get_settings().webhook_max_attempts == 5

    # When the worker handles it
    load_handler("tasks/webhook_worker").lambda_handler({"Records": [record]}, FakeContext())

    # Then exactly that outcome is counted
    assert printed() == {expected: 1}


# --- mail -------------------------------------------------------------------------------------


def test_mailer_counts_each_email_sent_once(
    load_event: Callable[[str], dict[str, Any]], printed: Callable[[], dict[str, float]]
) -> None:
    # Given a queued e-mail, delivered in a batch that carries it twice (a redelivery)
    task_id = tasks.enqueue_email(
        to="metrics@example.com",
        template="verify_email",
        params={"display_name": "Ada", "token": "t" * 32, "link": "https://app.kumo.test/v"},
    )
    boto3.client("sqs").purge_queue(QueueUrl=QUEUE_URL)
    event = load_event("tasks/mailer/message")
    (template,) = event["Records"]
    event["Records"] = [
        template | {"messageId": f"m{n}", "body": json.dumps({"task_id": task_id})}
        for n in range(2)
    ]

    # When the mailer handles it
    load_handler("tasks/mailer").lambda_handler(event, FakeContext())

    # Then one e-mail is counted
    assert printed() == {"MailsSent": 1}
