"""Scheduled webhook tasks on the local stack: the real scheduler tick, worker and queues.

A receiver of the tests' own listens on 127.0.0.1 (the local stack allows loopback
targets); every test uses its own path on it, so tests never see each other's calls.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from infra.local.receiver import Call, Receiver
from tests.integration.conftest import Api, Outbox, signed_up_user

# EventBridge's rate(1 minute) fires about a minute apart: two ticks and some slack.
TWO_TICKS_SECONDS = 150.0
FAR_FUTURE = "0 0 1 1 *"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def owner(api: Api, outbox: Outbox) -> dict[str, Any]:
    return signed_up_user(api, outbox, "hooks")


def _path(behaviour: str = "ok") -> str:
    return f"/t/{uuid.uuid4().hex[:12]}/{behaviour}"


def _create(api: Api, token: str, url: str, **fields: Any) -> requests.Response:
    body = {"name": "hook", "schedule": FAR_FUTURE, "url": url, **fields}
    return api.post("/api/v1/scheduled-tasks", token=token, json=body)


def _task(api: Api, token: str, url: str, **fields: Any) -> dict[str, Any]:
    created = _create(api, token, url, **fields)
    assert created.status_code == 201, created.text
    task: dict[str, Any] = created.json()
    return task


def _runs(api: Api, token: str, task_id: str) -> list[dict[str, Any]]:
    answer = api.get(f"/api/v1/scheduled-tasks/{task_id}/runs", token=token)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def _wait_runs(
    api: Api, token: str, task_id: str, *, count: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _runs(api, token, task_id)
        if len(runs) >= count:
            return runs
        time.sleep(0.25)
    raise AssertionError(f"fewer than {count} runs logged within {timeout} s")


def _slot(call: Call) -> str:
    delivery = call.header("Kumo-Delivery") or ""
    return delivery.split(":", 1)[1]


def test_scheduled_task_fires_signed_within_two_ticks_and_pause_stops_it(
    api: Api, owner: dict[str, Any], receiver: Receiver
) -> None:
    # Given two tasks due every minute
    token = owner["access_token"]
    kept_path, paused_path = _path(), _path()
    kept = _task(
        api,
        token,
        receiver.base + kept_path,
        schedule="* * * * *",
        headers={"X-Team": "rocket"},
        body={"hello": "kumo"},
    )
    paused = _task(api, token, receiver.base + paused_path, schedule="cron(* * * * ? *)")

    # When the scheduler ticks, then both fire, signed with the secret shown at creation
    first = receiver.wait_for(kept_path, timeout=TWO_TICKS_SECONDS)[0]
    assert first.signature_valid(kept["signing_secret"])
    assert not first.signature_valid(paused["signing_secret"])
    assert first.body == b'{"hello":"kumo"}'
    assert first.header("X-Team") == "rocket"
    assert first.header("Kumo-Delivery") == f"{kept['id']}:{_slot(first)}"
    receiver.wait_for(paused_path, timeout=TWO_TICKS_SECONDS)

    # When one is paused and a later tick passes
    answer = api.patch(
        f"/api/v1/scheduled-tasks/{paused['id']}", token=token, json={"paused": True}
    )
    assert answer.status_code == 200 and answer.json()["status"] == "paused"
    assert answer.json()["next_run_at"] is None
    calls_when_paused = len(receiver.calls_to(paused_path))
    last_paused_slot = max(_slot(c) for c in receiver.calls_to(paused_path))
    deadline = time.monotonic() + TWO_TICKS_SECONDS
    while not any(_slot(c) > last_paused_slot for c in receiver.calls_to(kept_path)):
        assert time.monotonic() < deadline, "the active task did not fire again"
        time.sleep(0.5)

    # And the paused task is then run by hand: its message is queued after that tick's were
    # taken (the active task's call came in), so a call the tick queued for it comes first
    manual = api.post(f"/api/v1/scheduled-tasks/{paused['id']}/run", token=token)
    assert manual.status_code == 202, manual.text
    _wait_for_slot(receiver, paused_path, manual.json()["slot"])

    # Then the paused task got nothing more than that manual call, and the log shows the
    # active task's success
    since_paused = receiver.calls_to(paused_path)[calls_when_paused:]
    assert [_slot(c) for c in since_paused] == [manual.json()["slot"]]
    runs = _runs(api, token, kept["id"])
    assert runs[0]["outcome"] == "succeeded" and runs[0]["status_code"] == 200
    assert runs[0]["trigger"] == "schedule" and runs[0]["attempt"] == 1
    assert '"received"' in runs[0]["excerpt"]


def _wait_for_slot(receiver: Receiver, path: str, slot: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(_slot(c) == slot for c in receiver.calls_to(path)):
        assert time.monotonic() < deadline, f"no call for slot {slot} within {timeout} s"
        time.sleep(0.25)


def test_run_now_calls_the_receiver_once(
    api: Api, owner: dict[str, Any], receiver: Receiver
) -> None:
    path = _path()
    task = _task(api, owner["access_token"], receiver.base + path, paused=True)
    queued = api.post(f"/api/v1/scheduled-tasks/{task['id']}/run", token=owner["access_token"])
    assert queued.status_code == 202, queued.text
    call = receiver.wait_for(path)[0]
    assert call.signature_valid(task["signing_secret"])
    runs = _wait_runs(api, owner["access_token"], task["id"], count=1)
    assert runs[0]["trigger"] == "manual" and runs[0]["slot"] == queued.json()["slot"]


def test_server_errors_retry_with_growing_gaps_then_dead_letter_and_redrive(
    api: Api, owner: dict[str, Any], receiver: Receiver, admin_token: str
) -> None:
    # Given a receiver answering 500
    token = owner["access_token"]
    path = _path("status/500")
    task = _task(api, token, receiver.base + path)

    # When the task runs
    assert api.post(f"/api/v1/scheduled-tasks/{task['id']}/run", token=token).status_code == 202

    # Then it is tried five times, the gaps between tries growing
    calls = receiver.wait_for(path, count=5, timeout=120)
    assert [c.header("Kumo-Attempt") for c in calls] == ["1", "2", "3", "4", "5"]
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(calls)]
    assert gaps[-1] > gaps[0] * 2, gaps
    assert all(later >= earlier * 0.8 for earlier, later in itertools.pairwise(gaps))

    # And the message lands in the dead-letter queue, the run marked failed
    deadline = time.monotonic() + 30
    letter = None
    while letter is None:
        assert time.monotonic() < deadline, "no dead letter for the task"
        listed = api.get(
            "/api/v1/admin/dead-letters",
            token=admin_token,
            params={"queue": "webhooks", "limit": 100},
        )
        assert listed.status_code == 200, listed.text
        letter = next((m for m in listed.json()["items"] if m["task_id"] == task["id"]), None)
        time.sleep(0.5)
    assert letter["last_error"] == "http 500"
    got = api.get(f"/api/v1/scheduled-tasks/{task['id']}", token=token).json()
    assert got["last_outcome"] == "failed"
    assert len(_runs(api, token, task["id"])) == 5

    # When the receiver recovers and an admin redrives the letter
    receiver.respond(path, 200)
    redriven = api.post(
        "/api/v1/admin/dead-letters/redrive",
        token=admin_token,
        json={"queue": "webhooks", "message_ids": [letter["message_id"]]},
    )
    assert redriven.status_code == 200, redriven.text
    assert redriven.json() == {"moved": [letter["message_id"]], "not_found": []}

    # Then the same slot runs once more and succeeds
    sixth = receiver.wait_for(path, count=6)[-1]
    assert sixth.header("Kumo-Attempt") == "6"
    assert _slot(sixth) == _slot(calls[0])
    runs = _wait_runs(api, token, task["id"], count=6)
    assert runs[0]["outcome"] == "succeeded"


def test_client_error_is_not_retried(api: Api, owner: dict[str, Any], receiver: Receiver) -> None:
    # Given a task whose receiver answers 400, and a witness task whose receiver answers 500
    token = owner["access_token"]
    path, witness_path = _path("status/400"), _path("status/500")
    task = _task(api, token, receiver.base + path)
    witness = _task(api, token, receiver.base + witness_path)

    # When the first runs and its failure is logged
    assert api.post(f"/api/v1/scheduled-tasks/{task['id']}/run", token=token).status_code == 202
    receiver.wait_for(path)
    runs = _wait_runs(api, token, task["id"], count=1)
    assert runs[0]["outcome"] == "failed" and runs[0]["status_code"] == 400

    # And the witness is run after it until its third attempt: a retry waits between half
    # and all of its step (base, then twice base), so the witness's first two waits together
    # (at least 1.5 base) outlast a first retry's (at most base): a retry of the 400 came first
    run = api.post(f"/api/v1/scheduled-tasks/{witness['id']}/run", token=token)
    assert run.status_code == 202, run.text
    receiver.wait_for(witness_path, count=3, timeout=60)
    receiver.respond(witness_path, 200)  # its next attempt succeeds: no dead letter left

    # Then the 400 was tried once
    assert len(receiver.calls_to(path)) == 1


def test_redirect_is_not_followed(api: Api, owner: dict[str, Any], receiver: Receiver) -> None:
    # Given a target that redirects to another loopback address
    token = owner["access_token"]
    trap = _path("trap")
    path = _path("redirect")
    task = _task(api, token, f"{receiver.base}{path}?to=http://127.0.0.1:{receiver.port}{trap}")

    api.post(f"/api/v1/scheduled-tasks/{task['id']}/run", token=token)

    runs = _wait_runs(api, token, task["id"], count=1)
    assert runs[0]["outcome"] == "failed"
    assert "redirect not followed" in (runs[0]["error"] or "")
    assert receiver.calls_to(trap) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
        "http://172.16.3.4/hook",
        "http://192.168.1.10/hook",
        "http://100.64.0.1/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://0.0.0.0/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
    ],
)
def test_unsafe_targets_are_refused(api: Api, owner: dict[str, Any], url: str) -> None:
    answer = _create(api, owner["access_token"], url)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["type"] == "urn:kumo:problem:validation-error"
    assert problem["errors"][0]["field"] == "url"


def test_second_task_for_the_same_url_answers_409_with_the_existing_id(
    api: Api, owner: dict[str, Any], receiver: Receiver
) -> None:
    url = receiver.base + _path()
    first = _task(api, owner["access_token"], url)
    again = _create(api, owner["access_token"], url.replace("http://", "HTTP://"))
    assert again.status_code == 409
    assert again.json()["type"] == "urn:kumo:problem:duplicate-task"
    assert again.json()["existing_id"] == first["id"]


def test_another_user_cannot_see_or_change_the_task(
    api: Api, owner: dict[str, Any], outbox: Outbox, receiver: Receiver
) -> None:
    task = _task(api, owner["access_token"], receiver.base + _path())
    stranger = signed_up_user(api, outbox, "stranger")["access_token"]
    base = f"/api/v1/scheduled-tasks/{task['id']}"
    attempts = [
        api.get(base, token=stranger),
        api.patch(base, token=stranger, json={"paused": True}),
        api.post(f"{base}/run", token=stranger),
        api.get(f"{base}/runs", token=stranger),
        api.post(f"{base}/rotate-secret", token=stranger),
        api.delete(base, token=stranger),
    ]
    assert [a.status_code for a in attempts] == [404] * len(attempts)
    listed = api.get("/api/v1/scheduled-tasks", token=stranger).json()["items"]
    assert listed == []
    assert api.get(base, token=owner["access_token"]).json()["status"] == "active"


def test_task_limit_and_bad_schedules_answer_clearly(
    api: Api, outbox: Outbox, receiver: Receiver
) -> None:
    token = signed_up_user(api, outbox, "limits")["access_token"]
    bad = _create(api, token, receiver.base + _path(), schedule="*/5 * * *")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "schedule"
    zone = _create(api, token, receiver.base + _path(), timezone="Mars/Olympus")
    assert zone.status_code == 422
    ids = [_task(api, token, receiver.base + _path(), paused=True)["id"] for _ in range(50)]
    over = _create(api, token, receiver.base + _path())
    assert over.status_code == 409 and over.json()["type"] == "urn:kumo:problem:task-limit-reached"
    assert api.delete(f"/api/v1/scheduled-tasks/{ids[0]}", token=token).status_code == 204
    assert _create(api, token, receiver.base + _path()).status_code == 201
    page = api.get("/api/v1/scheduled-tasks", token=token, params={"limit": 20}).json()
    assert len(page["items"]) == 20 and page["next_cursor"]


def test_admin_sends_a_templated_email_task(
    api: Api, admin_token: str, outbox: Outbox, owner: dict[str, Any]
) -> None:
    params = {
        "display_name": "Ada <admin>",
        "device_name": "greenhouse-7",
        "metric": "temperature",
        "value": "41.5",
        "comparison": ">",
        "threshold": "40",
        "severity": "critical",
        "triggered_at": "2026-11-22T08:00:00Z",
        "link": "http://127.0.0.1/alerts/1",
    }
    to = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    queued = api.post(
        "/api/v1/admin/tasks",
        token=admin_token,
        json={"kind": "email", "to": to, "template": "alert_notification", "params": params},
    )
    assert queued.status_code == 202, queued.text
    mail = outbox.wait_for(to, "greenhouse-7")
    assert "41.5" in mail["BodyText"]
    assert "Ada &lt;admin&gt;" in mail["BodyHtml"]
    status = api.get(f"/api/v1/admin/tasks/{queued.json()['id']}", token=admin_token).json()
    assert status["status"] == "sent"

    unknown = api.post(
        "/api/v1/admin/tasks",
        token=admin_token,
        json={"kind": "email", "to": to, "template": "nope", "params": {}},
    )
    assert unknown.status_code == 422
    as_user = api.post(
        "/api/v1/admin/tasks",
        token=owner["access_token"],
        json={"kind": "email", "to": to, "template": "alert_notification", "params": params},
    )
    assert as_user.status_code == 403
