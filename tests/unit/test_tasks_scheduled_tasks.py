"""/api/v1/scheduled-tasks: a user's scheduled webhook tasks, their rules and their isolation."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from kumo.core import clock
from kumo.core.config import get_settings
from kumo.core.ids import new_id
from kumo.tasks import scheduled_tasks, tick
from kumo.tasks.errors import DuplicateTask, TaskLimitReached
from kumo.tasks.models import RunModel, ScheduledTaskModel, run_key, scheduled_key
from kumo.tasks.schemas import CreateScheduledTaskRequest, UpdateScheduledTaskRequest

from tests.support.factories import new_principal
from tests.unit.conftest import STAGE, WEBHOOK_QUEUE_URL

pytestmark = pytest.mark.usefixtures("aws")

PROBLEM = "urn:kumo:problem:"
TASKS = "/api/v1/scheduled-tasks"
TASK = "/api/v1/scheduled-tasks/{task_id}"
# Every host name resolves here: public, so the SSRF guard lets it through without real DNS.
PUBLIC_V4 = "93.184.215.14"
# The frozen wall clock: 10:02:30 UTC, so `*/5 * * * *` next runs at 10:05.
NOW = datetime(2090, 1, 1, 10, 2, 30, tzinfo=UTC)
EVERY_FIVE = "*/5 * * * *"
YEARLY = "0 0 1 1 *"

# action -> (function, method, path suffix)
TASK_ROUTES: dict[str, tuple[str, str, str]] = {
    "get": ("tasks/get_scheduled_task", "GET", ""),
    "update": ("tasks/update_scheduled_task", "PATCH", ""),
    "delete": ("tasks/delete_scheduled_task", "DELETE", ""),
    "run": ("tasks/run_scheduled_task", "POST", "/run"),
    "runs": ("tasks/list_task_runs", "GET", "/runs"),
    "rotate": ("tasks/rotate_task_secret", "POST", "/rotate-secret"),
}


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """kumo.core.clock answers NOW, so next runs are exact."""
    monkeypatch.setattr(clock, "now", lambda: NOW.timestamp())


@pytest.fixture(autouse=True)
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every name resolves to one public address: no real DNS, the same answer everywhere."""

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (PUBLIC_V4, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Change settings for one test; the cache is cleared again before the env is restored."""

    def apply(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()


def hook_url(label: str = "hook") -> str:
    return f"https://hooks.example.com/{label}/{new_id().lower()}"


def task_body(**fields: Any) -> dict[str, Any]:
    return {"name": "Nightly sync", "schedule": EVERY_FIVE, "url": hook_url(), **fields}


def create(call_api: Any, user: dict[str, str] | None, **fields: Any) -> dict[str, Any]:
    response: dict[str, Any] = call_api(
        "tasks/create_scheduled_task", "POST", TASKS, body=task_body(**fields), principal=user
    )
    return response


def created(call_api: Any, user: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = create(call_api, user, **fields)
    assert response["statusCode"] == 201, response
    task: dict[str, Any] = response["json"]
    return task


def on_task(
    call_api: Any,
    action: str,
    task_id: str,
    user: dict[str, str] | None,
    *,
    body: Any = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    function, method, suffix = TASK_ROUTES[action]
    response: dict[str, Any] = call_api(
        function,
        method,
        f"{TASKS}/{task_id}{suffix}",
        resource=TASK + suffix,
        path_parameters={"task_id": task_id},
        body=body,
        query=query,
        principal=user,
    )
    return response


def list_tasks(call_api: Any, user: dict[str, str], **query: str) -> dict[str, Any]:
    response: dict[str, Any] = call_api(
        "tasks/list_scheduled_tasks", "GET", TASKS, query=query or None, principal=user
    )
    return response


def problem_type(response: dict[str, Any]) -> str:
    return str(response["json"]["type"]).removeprefix(PROBLEM)


def stored_item(task_id: str) -> dict[str, Any]:
    """The raw DynamoDB item, so absent attributes show as absent."""
    item: dict[str, Any] = boto3.client("dynamodb").get_item(
        TableName=f"kumo-{STAGE}-tasks",
        Key={"pk": {"S": scheduled_key(task_id)}, "sk": {"S": "META"}},
    )["Item"]
    return item


def queued_runs() -> list[dict[str, Any]]:
    messages = (
        boto3.client("sqs")
        .receive_message(QueueUrl=WEBHOOK_QUEUE_URL, MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return [json.loads(message["Body"]) for message in messages]


def stored_tasks() -> list[ScheduledTaskModel]:
    return list(ScheduledTaskModel.scan(ScheduledTaskModel.sk == "META"))


def service_create(owner_id: str, **fields: Any) -> ScheduledTaskModel:
    task, _ = scheduled_tasks.create_task(
        owner_id=owner_id, request=CreateScheduledTaskRequest(**task_body(**fields))
    )
    return task


# --- POST /scheduled-tasks ------------------------------------------------------------------


def test_create_scheduled_task_answers_201_with_signing_secret(call_api):
    # Given a signed-in user
    user = new_principal()

    # When they create a scheduled task
    response = create(call_api, user, name="Nightly sync")

    # Then it is created and its signing secret is shown
    assert response["statusCode"] == 201, response
    task = response["json"]
    assert task["name"] == "Nightly sync"
    assert task["status"] == "active"
    assert task["signing_secret"].startswith("whsec_")
    assert stored_item(task["id"])["secret"] == {"S": task["signing_secret"]}


def test_get_scheduled_task_never_returns_signing_secret(call_api):
    # Given a task whose secret was shown at creation
    user = new_principal()
    task = created(call_api, user)

    # When the owner reads it back
    response = on_task(call_api, "get", task["id"], user)

    # Then the secret appears nowhere in the answer
    assert response["statusCode"] == 200, response
    assert "signing_secret" not in response["json"]
    assert task["signing_secret"] not in response["body"]
    assert response["json"] == {k: v for k, v in task.items() if k != "signing_secret"}


def test_create_scheduled_task_sets_next_run_at_for_active_task(call_api):
    # Given the clock at 10:02:30 UTC
    user = new_principal()

    # When an active task every five minutes is created
    task = created(call_api, user, schedule=EVERY_FIVE)

    # Then it next runs at 10:05 and is in the due index
    assert task["next_run_at"] == "2090-01-01T10:05:00.000Z"
    assert "gsi2pk" in stored_item(task["id"])


def test_create_scheduled_task_reads_cron_in_its_timezone(call_api):
    # Given the clock at 10:02:30 UTC, past 09:00 in Berlin (UTC+1 in January)
    user = new_principal()

    # When a daily 09:00 Berlin task is created
    task = created(call_api, user, schedule="0 9 * * *", timezone="Europe/Berlin")

    # Then it next runs tomorrow at 08:00 UTC
    assert task["next_run_at"] == "2090-01-02T08:00:00.000Z"


def test_create_scheduled_task_leaves_paused_task_out_of_due_index(call_api):
    # Given a signed-in user
    user = new_principal()

    # When they create a paused task
    task = created(call_api, user, paused=True)

    # Then it has no next run and no due-index keys
    assert (task["status"], task["next_run_at"]) == ("paused", None)
    item = stored_item(task["id"])
    assert "gsi2pk" not in item
    assert "gsi2sk" not in item


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": "every monday"}, "schedule"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ({"url": "http://10.0.0.1/hook"}, "url"),
        ({"url": "ftp://hooks.example.com/hook"}, "url"),
        ({"url": "http://127.0.0.1:9000/hook"}, "url"),
        ({"headers": {"Bad Header": "x"}}, "headers"),
        ({"headers": {"Kumo-Signature": "forged"}}, "headers"),
        ({"headers": {"X-Token": "line\r\nInjected: yes"}}, "headers"),
        ({"method": "GET", "body": {"a": 1}}, "body"),
        ({"body": {"blob": "x" * (64 * 1024)}}, "body"),
        ({"colour": "blue"}, "colour"),
        ({"method": "TRACE"}, "method"),
    ],
    ids=[
        "bad-cron",
        "not-a-schedule",
        "metadata-address",
        "private-address",
        "ftp-scheme",
        "loopback-not-allowed",
        "header-name-with-space",
        "reserved-header",
        "header-value-with-newline",
        "body-with-get",
        "body-too-large",
        "unknown-field",
        "unknown-method",
    ],
)
def test_create_scheduled_task_rejects_invalid_fields_with_422(call_api, fields, field):
    # Given a body with one invalid field
    user = new_principal()

    # When creating a task with it
    response = create(call_api, user, **fields)

    # Then it is a validation problem naming that field, and nothing is stored
    assert response["statusCode"] == 422, response
    assert problem_type(response) == "validation-error"
    assert field in {error["field"] for error in response["json"]["errors"]}
    assert stored_tasks() == []


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "Not a zone", "America"])
def test_create_scheduled_task_rejects_bad_timezone_on_timezone_field(call_api, timezone):
    # Given a valid schedule in a time zone that does not exist
    user = new_principal()

    # When creating a task with it
    response = create(call_api, user, schedule=EVERY_FIVE, timezone=timezone)

    # Then it is a validation problem naming the timezone field (not the schedule)
    assert response["statusCode"] == 422, response
    assert [error["field"] for error in response["json"]["errors"]] == ["timezone"]
    assert stored_tasks() == []


@pytest.mark.parametrize(
    "second_url",
    [
        "https://hooks.example.com/in",
        "HTTPS://Hooks.Example.COM/in",
        "https://hooks.example.com:443/in",
        "https://hooks.example.com/in#fragment",
    ],
    ids=["same", "case-of-scheme-and-host", "default-port", "fragment"],
)
def test_create_scheduled_task_refuses_duplicate_url_with_409(call_api, second_url):
    # Given a task for a URL
    user = new_principal()
    first = created(call_api, user, url="https://hooks.example.com/in")

    # When the same user creates another task for the same URL, however it is spelled
    response = create(call_api, user, url=second_url)

    # Then it is a duplicate-task conflict naming the existing task
    assert response["statusCode"] == 409, response
    assert problem_type(response) == "duplicate-task"
    assert response["json"]["existing_id"] == first["id"]
    assert len(stored_tasks()) == 1


def test_create_scheduled_task_accepts_url_differing_in_path(call_api):
    # Given a task for a URL
    user = new_principal()
    created(call_api, user, url="https://hooks.example.com/in")

    # When creating one whose path differs only in case
    response = create(call_api, user, url="https://hooks.example.com/IN")

    # Then it is another URL (paths are case-sensitive)
    assert response["statusCode"] == 201, response


def test_create_scheduled_task_allows_same_url_for_another_user(call_api):
    # Given a task of one user for a URL
    created(call_api, new_principal(), url="https://hooks.example.com/shared")

    # When another user creates a task for the same URL
    response = create(call_api, new_principal(), url="https://hooks.example.com/shared")

    # Then de-duplication is per user
    assert response["statusCode"] == 201, response


def test_create_scheduled_task_over_limit_answers_409_task_limit_reached(call_api, configure):
    # Given a limit of two tasks per user, and a user with two
    configure(SCHEDULED_TASKS_PER_USER="2")
    user = new_principal()
    created(call_api, user)
    created(call_api, user)

    # When they create a third
    response = create(call_api, user)

    # Then it is a conflict that names the limit, and nothing more is stored
    assert response["statusCode"] == 409, response
    assert problem_type(response) == "task-limit-reached"
    assert response["json"]["limit"] == 2
    assert len(stored_tasks()) == 2


def test_create_scheduled_task_limit_counts_per_user(call_api, configure):
    # Given a limit of one task per user, reached by one user
    configure(SCHEDULED_TASKS_PER_USER="1")
    created(call_api, new_principal())

    # When another user creates their first task
    response = create(call_api, new_principal())

    # Then it is created
    assert response["statusCode"] == 201, response


def test_delete_scheduled_task_frees_a_place_under_the_limit(call_api, configure):
    # Given a user at a limit of two tasks
    configure(SCHEDULED_TASKS_PER_USER="2")
    user = new_principal()
    first = created(call_api, user)
    created(call_api, user)

    # When they delete one and create another
    deleted = on_task(call_api, "delete", first["id"], user)
    response = create(call_api, user)

    # Then the new task fits
    assert deleted["statusCode"] == 204, deleted
    assert response["statusCode"] == 201, response


def test_service_create_task_limit_is_a_task_limit_reached_error(configure):
    # Given a limit of one task, reached
    configure(SCHEDULED_TASKS_PER_USER="1")
    owner = new_id()
    service_create(owner)

    # When the service is asked for one more
    # Then it raises the limit error carrying the limit
    with pytest.raises(TaskLimitReached) as raised:
        service_create(owner)
    assert raised.value.extra == {"limit": 1}


def test_service_create_task_duplicate_wins_over_limit(configure):
    # Given a user at the limit whose only task calls a URL
    configure(SCHEDULED_TASKS_PER_USER="1")
    owner = new_id()
    first = service_create(owner, url="https://hooks.example.com/only")

    # When creating another task for that URL
    # Then the answer is the duplicate, which tells the user more
    with pytest.raises(DuplicateTask) as raised:
        service_create(owner, url="https://hooks.example.com/only")
    assert raised.value.extra == {"existing_id": first.task_id}


def test_service_create_task_duplicate_past_the_precheck_is_caught_by_transaction(monkeypatch):
    # Given a task for a URL, and a second create whose pre-check ran before it existed
    owner = new_id()
    first = service_create(owner, url="https://hooks.example.com/race")
    real_lookup = scheduled_tasks._existing_for_url
    lookups: list[str] = []

    def racing_lookup(owner_id: str, digest: str) -> str | None:
        lookups.append(digest)
        return None if len(lookups) == 1 else real_lookup(owner_id, digest)

    monkeypatch.setattr(scheduled_tasks, "_existing_for_url", racing_lookup)

    # When the second create writes
    # Then the URL claim's condition refuses it as a duplicate of the first
    with pytest.raises(DuplicateTask) as raised:
        service_create(owner, url="https://hooks.example.com/race")
    assert raised.value.extra == {"existing_id": first.task_id}
    assert [task.task_id for task in stored_tasks()] == [first.task_id]


@pytest.mark.parametrize(
    ("schedule", "status"),
    [
        ("*/1 * * * *", 422),
        ("* * * * *", 422),
        ("rate(2 minutes)", 422),
        ("*/5 * * * *", 201),
        ("rate(5 minutes)", 201),
        ("cron(0/5 * * * ? *)", 201),
    ],
)
def test_create_scheduled_task_enforces_minimum_interval(call_api, configure, schedule, status):
    # Given runs must be at least 300 seconds apart
    configure(SCHEDULE_MIN_INTERVAL_SECONDS="300")
    user = new_principal()

    # When creating a task with a schedule
    response = create(call_api, user, schedule=schedule)

    # Then schedules closer than five minutes are refused on the schedule field
    assert response["statusCode"] == status, response
    if status == 422:
        assert [error["field"] for error in response["json"]["errors"]] == ["schedule"]


def test_create_scheduled_task_refuses_anonymous_caller_with_401(call_api):
    # Given no principal in the request context
    # When creating a task
    response = create(call_api, None)

    # Then it is unauthorized and nothing is stored
    assert response["statusCode"] == 401, response
    assert stored_tasks() == []


def test_create_scheduled_task_refuses_device_principal_with_403(call_api):
    # Given a device, not a user, calling
    device = {"kind": "device", "subject_id": new_id(), "roles": "", "principalId": "d"}

    # When it creates a task
    response = create(call_api, device)

    # Then it is forbidden and nothing is stored
    assert response["statusCode"] == 403, response
    assert stored_tasks() == []


@pytest.mark.parametrize("action", sorted(TASK_ROUTES))
@pytest.mark.parametrize(
    ("principal", "status"),
    [
        (None, 401),
        ({"kind": "device", "subject_id": "01DEVICE", "roles": "", "principalId": "d"}, 403),
    ],
    ids=["anonymous", "device"],
)
def test_task_routes_refuse_non_user_callers(call_api, action, principal, status):
    # Given an existing task
    owner = new_principal()
    task = created(call_api, owner)
    body = {"name": "Changed"} if action == "update" else None

    # When it is addressed without a user principal
    response = on_task(call_api, action, task["id"], principal, body=body)

    # Then the caller is refused and the task is untouched
    assert response["statusCode"] == status, response
    assert on_task(call_api, "get", task["id"], owner)["json"]["name"] == task["name"]
    assert queued_runs() == []


def test_list_scheduled_tasks_refuses_anonymous_caller_with_401(call_api):
    # Given no principal
    # When listing tasks
    response = call_api("tasks/list_scheduled_tasks", "GET", TASKS)

    # Then it is unauthorized
    assert response["statusCode"] == 401, response


# --- GET /scheduled-tasks -------------------------------------------------------------------


def test_list_scheduled_tasks_pages_newest_first_with_cursor(call_api):
    # Given a user with three tasks
    user = new_principal()
    ids = [created(call_api, user, name=f"Task {n}")["id"] for n in range(3)]

    # When listing two per page and following the cursor
    first = list_tasks(call_api, user, limit="2")
    second = list_tasks(call_api, user, limit="2", cursor=first["json"]["next_cursor"])

    # Then the pages hold all three, newest (highest, time-ordered id) first, then end
    assert first["statusCode"] == second["statusCode"] == 200
    listed = [item["id"] for page in (first, second) for item in page["json"]["items"]]
    assert listed == sorted(ids, reverse=True)
    assert len(first["json"]["items"]) == 2
    assert second["json"]["next_cursor"] is None


def test_list_scheduled_tasks_shows_only_my_tasks(call_api):
    # Given two users with a task each
    mine, theirs = new_principal(), new_principal()
    task = created(call_api, mine)
    created(call_api, theirs)

    # When one lists their tasks
    response = list_tasks(call_api, mine)

    # Then only their own is listed, without its secret
    assert [item["id"] for item in response["json"]["items"]] == [task["id"]]
    assert "signing_secret" not in response["json"]["items"][0]


def test_list_scheduled_tasks_refuses_cursor_of_another_users_list_with_400(call_api):
    # Given a cursor from one user's list
    owner, other = new_principal(), new_principal()
    for _ in range(2):
        created(call_api, owner)
    cursor = list_tasks(call_api, owner, limit="1")["json"]["next_cursor"]
    assert cursor

    # When another user pages with it
    response = list_tasks(call_api, other, limit="1", cursor=cursor)

    # Then it is a bad request, not the owner's tasks
    assert response["statusCode"] == 400, response
    assert problem_type(response) == "bad-request"


def test_list_scheduled_tasks_refuses_forged_cursor_with_400(call_api):
    # Given a signed-in user
    user = new_principal()

    # When paging with a cursor the API never issued
    response = list_tasks(call_api, user, cursor="eyJwayI6eyJTIjoieCJ9fQ.forged")

    # Then it is a bad request
    assert response["statusCode"] == 400, response


# --- isolation: another user's task is a 404 --------------------------------------------------


@pytest.mark.parametrize("action", sorted(TASK_ROUTES))
def test_task_routes_answer_404_for_another_users_task(call_api, action):
    # Given a task of one user
    owner, intruder = new_principal(), new_principal()
    task = created(call_api, owner)
    body = {"name": "Hijacked", "url": "https://evil.example.com/"} if action == "update" else None

    # When another user addresses it
    response = on_task(call_api, action, task["id"], intruder, body=body)

    # Then it is the same 404 as for a missing task, and nothing changed
    assert response["statusCode"] == 404, response
    assert problem_type(response) == "not-found"
    after = on_task(call_api, "get", task["id"], owner)
    assert after["json"] == {k: v for k, v in task.items() if k != "signing_secret"}
    assert stored_item(task["id"])["secret"] == {"S": task["signing_secret"]}
    assert queued_runs() == []


# Named ids: a generated one in a test's id would differ between pytest-xdist's workers.
@pytest.mark.parametrize(
    "task_id",
    [new_id(), "not-an-id", "01" + "Z" * 24],
    ids=["unknown", "not-an-id", "past-the-ulid-range"],
)
def test_get_scheduled_task_answers_404_for_unknown_id(call_api, task_id):
    # Given a signed-in user
    user = new_principal()

    # When reading a task that does not exist
    response = on_task(call_api, "get", task_id, user)

    # Then it is not found
    assert response["statusCode"] == 404, response


# --- PATCH /scheduled-tasks/{id} ------------------------------------------------------------


def test_update_scheduled_task_pause_removes_it_from_due_index(call_api):
    # Given an active task
    user = new_principal()
    task = created(call_api, user)

    # When the owner pauses it
    response = on_task(call_api, "update", task["id"], user, body={"paused": True})

    # Then it is paused, without a next run or due-index keys
    assert response["statusCode"] == 200, response
    assert (response["json"]["status"], response["json"]["next_run_at"]) == ("paused", None)
    item = stored_item(task["id"])
    assert "gsi2pk" not in item
    assert "gsi2sk" not in item
    assert "next_run_at" not in item


def test_update_scheduled_task_resume_puts_it_back_with_fresh_next_run(call_api, monkeypatch):
    # Given a task paused at 10:02:30
    user = new_principal()
    task = created(call_api, user, paused=True)

    # When the owner resumes it at 10:21:00
    later = datetime(2090, 1, 1, 10, 21, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: later.timestamp())
    response = on_task(call_api, "update", task["id"], user, body={"paused": False})

    # Then it is active again, due at the next slot after the resume, and in the due index
    assert response["statusCode"] == 200, response
    assert response["json"]["status"] == "active"
    assert response["json"]["next_run_at"] == "2090-01-01T10:25:00.000Z"
    item = stored_item(task["id"])
    assert item["gsi2sk"]["S"].startswith("2090-01-01T10:25:00.000Z#")


def test_update_scheduled_task_schedule_change_recomputes_next_run(call_api):
    # Given a yearly task
    user = new_principal()
    task = created(call_api, user, schedule=YEARLY)
    assert task["next_run_at"] == "2091-01-01T00:00:00.000Z"

    # When the owner changes it to every five minutes
    response = on_task(call_api, "update", task["id"], user, body={"schedule": EVERY_FIVE})

    # Then its next run is the next five-minute slot, in the answer and in the due index
    assert response["statusCode"] == 200, response
    assert response["json"]["next_run_at"] == "2090-01-01T10:05:00.000Z"
    assert stored_item(task["id"])["gsi2sk"]["S"].startswith("2090-01-01T10:05:00.000Z#")


def test_update_scheduled_task_timezone_change_recomputes_next_run(call_api):
    # Given a daily 09:00 task in UTC (next run tomorrow, the clock being 10:02:30 UTC)
    user = new_principal()
    task = created(call_api, user, schedule="0 9 * * *")
    assert task["next_run_at"] == "2090-01-02T09:00:00.000Z"

    # When the owner moves it to New York (UTC-5 in January)
    response = on_task(call_api, "update", task["id"], user, body={"timezone": "America/New_York"})

    # Then it next runs at 09:00 New York time today
    assert response["json"]["next_run_at"] == "2090-01-01T14:00:00.000Z"


def test_update_scheduled_task_name_change_keeps_next_run(call_api, monkeypatch):
    # Given a task due at 10:05
    user = new_principal()
    task = created(call_api, user)

    # When only its name changes, later on
    monkeypatch.setattr(clock, "now", lambda: NOW.timestamp() + 3600)
    response = on_task(call_api, "update", task["id"], user, body={"name": "Renamed"})

    # Then the next run stays as it was
    assert response["json"]["name"] == "Renamed"
    assert response["json"]["next_run_at"] == task["next_run_at"]


def test_update_scheduled_task_refuses_bad_schedule_with_422(call_api):
    # Given a task
    user = new_principal()
    task = created(call_api, user)

    # When the owner sets an invalid schedule
    response = on_task(call_api, "update", task["id"], user, body={"schedule": "61 * * * *"})

    # Then it is refused and the schedule is unchanged
    assert response["statusCode"] == 422, response
    assert on_task(call_api, "get", task["id"], user)["json"]["schedule"] == EVERY_FIVE


def test_update_scheduled_task_url_change_frees_old_url(call_api):
    # Given a task whose URL changes
    user = new_principal()
    task = created(call_api, user, url="https://hooks.example.com/old")
    moved = on_task(
        call_api, "update", task["id"], user, body={"url": "https://hooks.example.com/new"}
    )
    assert moved["statusCode"] == 200, moved

    # When the owner creates a task for the old URL
    response = create(call_api, user, url="https://hooks.example.com/old")

    # Then the old URL is free again
    assert response["statusCode"] == 201, response


def test_update_scheduled_task_url_change_claims_new_url(call_api):
    # Given a task moved to a new URL
    user = new_principal()
    task = created(call_api, user, url="https://hooks.example.com/old")
    on_task(call_api, "update", task["id"], user, body={"url": "https://hooks.example.com/new"})

    # When the owner creates another task for the new URL
    response = create(call_api, user, url="HTTPS://HOOKS.example.com/new")

    # Then the new URL conflicts with the moved task
    assert response["statusCode"] == 409, response
    assert response["json"]["existing_id"] == task["id"]


def test_update_scheduled_task_refuses_url_of_my_other_task_with_409(call_api):
    # Given two tasks of one user
    user = new_principal()
    first = created(call_api, user, url="https://hooks.example.com/a")
    second = created(call_api, user, url="https://hooks.example.com/b")

    # When the second is pointed at the first one's URL
    response = on_task(
        call_api, "update", second["id"], user, body={"url": "https://hooks.example.com/a"}
    )

    # Then it is a duplicate of the first, and the second keeps its URL
    assert response["statusCode"] == 409, response
    assert problem_type(response) == "duplicate-task"
    assert response["json"]["existing_id"] == first["id"]
    assert on_task(call_api, "get", second["id"], user)["json"]["url"].endswith("/b")


def test_update_scheduled_task_refuses_unsafe_url_with_422(call_api):
    # Given a task
    user = new_principal()
    task = created(call_api, user)

    # When the owner points it at the cloud metadata address
    response = on_task(
        call_api, "update", task["id"], user, body={"url": "http://169.254.169.254/"}
    )

    # Then it is refused on the url field and the URL is unchanged
    assert response["statusCode"] == 422, response
    assert response["json"]["errors"][0]["field"] == "url"
    assert on_task(call_api, "get", task["id"], user)["json"]["url"] == task["url"]


def test_update_scheduled_task_body_null_clears_body(call_api):
    # Given a task with a JSON body
    user = new_principal()
    task = created(call_api, user, body={"report": "daily"})
    assert task["body"] == {"report": "daily"}

    # When the owner sends body: null
    response = on_task(call_api, "update", task["id"], user, body={"body": None})

    # Then the body is gone, also when read back
    assert response["statusCode"] == 200, response
    assert response["json"]["body"] is None
    assert on_task(call_api, "get", task["id"], user)["json"]["body"] is None
    assert "body_json" not in stored_item(task["id"])


def test_update_scheduled_task_without_body_field_keeps_body(call_api):
    # Given a task with a JSON body
    user = new_principal()
    task = created(call_api, user, body={"report": "daily"})

    # When the owner changes only the name
    response = on_task(call_api, "update", task["id"], user, body={"name": "Renamed"})

    # Then the body stays
    assert response["json"]["body"] == {"report": "daily"}


def test_update_scheduled_task_refuses_get_method_while_body_set_with_422(call_api):
    # Given a POST task with a body
    user = new_principal()
    task = created(call_api, user, body={"report": "daily"})

    # When the owner switches the method to GET without removing the body
    response = on_task(call_api, "update", task["id"], user, body={"method": "GET"})

    # Then it is refused on the body field
    assert response["statusCode"] == 422, response
    assert response["json"]["errors"][0]["field"] == "body"


def test_update_scheduled_task_refuses_unknown_field_with_422(call_api):
    # Given a task
    user = new_principal()
    task = created(call_api, user)

    # When the owner sends a field the API does not know
    response = on_task(call_api, "update", task["id"], user, body={"secret": "mine"})

    # Then it is a validation problem
    assert response["statusCode"] == 422, response


def test_update_scheduled_task_renames_task_whose_schedule_has_ended(call_api, monkeypatch):
    # Given a task whose only run (31 December 2090, 12:00 UTC) was handed out by the tick
    user = new_principal()
    task = created(call_api, user, schedule="cron(0 12 31 12 ? 2090)")
    last = datetime(2090, 12, 31, 12, 0, tzinfo=UTC)
    assert tick.enqueue_due_tasks(now=last).advanced == 1
    monkeypatch.setattr(clock, "now", lambda: last.timestamp() + 86_400)

    # When the owner renames it afterwards
    response = on_task(call_api, "update", task["id"], user, body={"name": "Archived"})

    # Then the rename is saved; the task stays out of the due index
    assert response["statusCode"] == 200, response
    assert (response["json"]["name"], response["json"]["next_run_at"]) == ("Archived", None)
    assert "gsi2pk" not in stored_item(task["id"])


def test_service_update_task_keeps_stored_schedule_under_stricter_limit(configure):
    # Given a task every minute, then a minimum interval of five minutes
    owner = new_id()
    task = service_create(owner, schedule="* * * * *")
    configure(SCHEDULE_MIN_INTERVAL_SECONDS="300")

    # When only its name changes
    updated = scheduled_tasks.update_task(
        owner_id=owner,
        task_id=task.task_id,
        request=UpdateScheduledTaskRequest(name="Renamed"),
    )

    # Then the stored schedule is not locked by the newer limit
    assert (updated.name, updated.schedule) == ("Renamed", "* * * * *")


# --- DELETE /scheduled-tasks/{id} -----------------------------------------------------------


def test_delete_scheduled_task_answers_204_and_task_is_gone(call_api):
    # Given a task
    user = new_principal()
    task = created(call_api, user)

    # When the owner deletes it
    response = on_task(call_api, "delete", task["id"], user)

    # Then it answers 204 and the task is not found any more
    assert response["statusCode"] == 204, response
    assert on_task(call_api, "get", task["id"], user)["statusCode"] == 404
    assert list_tasks(call_api, user)["json"]["items"] == []


def test_delete_scheduled_task_frees_its_url(call_api):
    # Given a deleted task
    user = new_principal()
    task = created(call_api, user, url="https://hooks.example.com/reuse")
    on_task(call_api, "delete", task["id"], user)

    # When the owner creates a task for the same URL
    response = create(call_api, user, url="https://hooks.example.com/reuse")

    # Then it is accepted
    assert response["statusCode"] == 201, response


def test_delete_scheduled_task_twice_answers_404(call_api):
    # Given a deleted task
    user = new_principal()
    task = created(call_api, user)
    on_task(call_api, "delete", task["id"], user)

    # When deleting it again
    response = on_task(call_api, "delete", task["id"], user)

    # Then it is not found
    assert response["statusCode"] == 404, response


# --- POST /scheduled-tasks/{id}/run ---------------------------------------------------------


def test_run_scheduled_task_answers_202_and_queues_one_manual_run(call_api):
    # Given a task
    user = new_principal()
    task = created(call_api, user)

    # When the owner runs it now
    response = on_task(call_api, "run", task["id"], user)

    # Then it answers 202 with the slot, and one id-only message is queued for it
    assert response["statusCode"] == 202, response
    assert response["json"] == {"task_id": task["id"], "slot": "2090-01-01T10:02:30.000Z"}
    assert queued_runs() == [
        {"task_id": task["id"], "slot": "2090-01-01T10:02:30.000Z", "trigger": "manual"}
    ]


def test_run_scheduled_task_queues_paused_task_too(call_api):
    # Given a paused task
    user = new_principal()
    task = created(call_api, user, paused=True)

    # When the owner runs it now
    response = on_task(call_api, "run", task["id"], user)

    # Then a manual run is queued all the same, and the task stays paused
    assert response["statusCode"] == 202, response
    assert [run["trigger"] for run in queued_runs()] == ["manual"]
    assert on_task(call_api, "get", task["id"], user)["json"]["status"] == "paused"


# --- POST /scheduled-tasks/{id}/rotate-secret -----------------------------------------------


def test_rotate_task_secret_answers_new_secret_and_stores_it(call_api):
    # Given a task and the secret shown at creation
    user = new_principal()
    task = created(call_api, user)

    # When the owner rotates the secret
    response = on_task(call_api, "rotate", task["id"], user)

    # Then a different secret is answered once, and it is the one stored
    assert response["statusCode"] == 200, response
    secret = response["json"]["signing_secret"]
    assert response["json"]["id"] == task["id"]
    assert secret.startswith("whsec_")
    assert secret != task["signing_secret"]
    assert stored_item(task["id"])["secret"] == {"S": secret}
    assert secret not in on_task(call_api, "get", task["id"], user)["body"]


# --- GET /scheduled-tasks/{id}/runs ---------------------------------------------------------


def test_list_task_runs_answers_empty_page_for_new_task(call_api):
    # Given a task that never ran
    user = new_principal()
    task = created(call_api, user)

    # When the owner reads its run log
    response = on_task(call_api, "runs", task["id"], user)

    # Then it is an empty page
    assert response["statusCode"] == 200, response
    assert response["json"] == {"items": [], "next_cursor": None}


def test_list_task_runs_refuses_cursor_of_another_task_with_400(call_api):
    # Given two tasks of one user, the first with two logged runs
    user = new_principal()
    first, second = created(call_api, user), created(call_api, user)
    for attempt in (1, 2):
        RunModel(
            scheduled_key(first["id"]),
            run_key("2090-01-01T10:05:00.000Z", attempt),
            slot="2090-01-01T10:05:00.000Z",
            trigger="schedule",
            attempt=attempt,
            started_at="2090-01-01T10:05:01.000Z",
            duration_ms=5,
            outcome="retry",
            status_code=500,
            error="http 500",
            excerpt="",
            expires_at=0,
        ).save()
    page = on_task(call_api, "runs", first["id"], user, query={"limit": "1"})
    assert page["json"]["items"][0]["attempt"] == 2  # newest first
    cursor = page["json"]["next_cursor"]
    assert cursor

    # When reading the second task's log with the first one's cursor
    response = on_task(call_api, "runs", second["id"], user, query={"cursor": cursor})

    # Then it is a bad request
    assert response["statusCode"] == 400, response


def test_run_scheduled_task_is_limited_per_user(call_api, monkeypatch):
    # Given a user allowed two manual runs an hour
    from kumo.core import abuse_limits
    from kumo.core.rate_limit import Limit

    monkeypatch.setattr(abuse_limits, "RUN_NOW_PER_USER", Limit("run-now.user", 2, 3600, "runs"))
    user = new_principal()
    task = created(call_api, user)

    # When the user runs the task three times
    answers = [on_task(call_api, "run", task["id"], user) for _ in range(3)]

    # Then the third is a 429 problem with Retry-After, and only two runs were queued
    assert [a["statusCode"] for a in answers] == [202, 202, 429]
    assert answers[2]["json"]["type"] == "urn:kumo:problem:rate-limited"
    assert int(answers[2]["multiValueHeaders"]["Retry-After"][0]) > 0
    assert len(queued_runs()) == 2
