"""Admin task routes: queue an e-mail or a one-off webhook, read a task, peek and redrive DLQs."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from kumo.core.ids import new_id
from kumo.tasks.models import (
    EmailTaskModel,
    RunModel,
    WebhookTaskModel,
    run_key,
    scheduled_key,
    task_key,
)

from tests.support.factories import new_principal
from tests.unit.conftest import QUEUE_BASE, QUEUE_URL, STAGE, WEBHOOK_QUEUE_URL

pytestmark = pytest.mark.usefixtures("aws")

PROBLEM = "urn:kumo:problem:"
TASKS = "/api/v1/admin/tasks"
DEAD_LETTERS = "/api/v1/admin/dead-letters"
REDRIVE = "/api/v1/admin/dead-letters/redrive"
MAIL_DLQ_URL = f"{QUEUE_BASE}/kumo-test-mail-dlq"
WEBHOOK_DLQ_URL = f"{QUEUE_BASE}/kumo-test-webhooks-dlq"
# Literal public addresses: the SSRF check needs no DNS for them.
PUBLIC_URL = "https://93.184.215.14/hooks/kumo"

VERIFY_PARAMS = {
    "display_name": "Ada",
    "token": "one-time-token-for-the-admin-test",
    "link": "https://app.kumo.test/auth/verify-email?token=one-time-token-for-the-admin-test",
}


# --- helpers --------------------------------------------------------------------------------


def admin() -> dict[str, str]:
    return new_principal("admin", role="admin")


def member() -> dict[str, str]:
    return new_principal("member")


def create_task(call_api: Any, body: dict[str, Any], principal: Any) -> dict[str, Any]:
    response: dict[str, Any] = call_api(
        "tasks/admin_create_task", "POST", TASKS, body=body, principal=principal
    )
    return response


def get_task(call_api: Any, task_id: str, principal: Any) -> dict[str, Any]:
    response: dict[str, Any] = call_api(
        "tasks/admin_get_task",
        "GET",
        f"{TASKS}/{task_id}",
        resource=f"{TASKS}/{{task_id}}",
        path_parameters={"task_id": task_id},
        principal=principal,
    )
    return response


def list_dead_letters(call_api: Any, principal: Any, **query: str) -> dict[str, Any]:
    response: dict[str, Any] = call_api(
        "tasks/admin_list_dead_letters",
        "GET",
        DEAD_LETTERS,
        query=query or None,
        principal=principal,
    )
    return response


def redrive(call_api: Any, body: dict[str, Any], principal: Any) -> dict[str, Any]:
    response: dict[str, Any] = call_api(
        "tasks/admin_redrive_dead_letters", "POST", REDRIVE, body=body, principal=principal
    )
    return response


def email_body(**fields: Any) -> dict[str, Any]:
    return {
        "kind": "email",
        "to": "ops@example.com",
        "template": "verify_email",
        "params": VERIFY_PARAMS,
        **fields,
    }


def webhook_body(**fields: Any) -> dict[str, Any]:
    return {"kind": "webhook", "url": PUBLIC_URL, "body": {"event": "ping"}, **fields}


def drain(queue_url: str) -> list[dict[str, Any]]:
    """Every message on a queue (kept invisible afterwards)."""
    sqs = boto3.client("sqs")
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=300
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)


def bodies(queue_url: str) -> list[dict[str, Any]]:
    return [json.loads(message["Body"]) for message in drain(queue_url)]


def dead_letter(queue_url: str, body: dict[str, Any]) -> str:
    """Put a message straight on a dead-letter queue; answers its message id."""
    sent = boto3.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
    return str(sent["MessageId"])


def problem_type(response: dict[str, Any]) -> str:
    return str(response["json"]["type"]).removeprefix(PROBLEM)


def nothing_stored() -> bool:
    """The tasks table holds no item at all (of any kind)."""
    scanned = boto3.client("dynamodb").scan(TableName=f"kumo-{STAGE}-tasks", Select="COUNT")
    return int(scanned["Count"]) == 0


# --- POST /admin/tasks: e-mail ----------------------------------------------------------------


def test_admin_create_task_queues_email_with_202(call_api):
    # Given an admin
    # When they queue an e-mail from a template
    response = create_task(call_api, email_body(), admin())

    # Then it answers 202 with the task, stores it and queues its id alone
    assert response["statusCode"] == 202, response
    task = response["json"]
    assert (task["kind"], task["status"]) == ("email", "queued")
    assert (task["template"], task["recipient"]) == ("verify_email", "ops@example.com")
    stored = EmailTaskModel.get(task_key(task["id"]), "TASK")
    assert stored.params == VERIFY_PARAMS
    assert bodies(QUEUE_URL) == [{"task_id": task["id"]}]


def test_admin_create_task_does_not_answer_email_params(call_api):
    # Given an admin queueing an e-mail that carries a one-time token
    # When the task is answered
    response = create_task(call_api, email_body(), admin())

    # Then the token is not in the answer
    assert VERIFY_PARAMS["token"] not in response["body"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"template": "no_such_template"}, "template"),
        ({"params": {"display_name": "Ada"}}, "token"),
        ({"params": {**VERIFY_PARAMS, "extra": "x"}}, "extra"),
    ],
    ids=["unknown-template", "missing-params", "unknown-param"],
)
def test_admin_create_task_rejects_bad_email_with_422(call_api, fields, field):
    # Given an e-mail request the templates cannot take
    # When an admin queues it
    response = create_task(call_api, email_body(**fields), admin())

    # Then it is a validation problem naming the problem, and nothing is stored or queued
    assert response["statusCode"] == 422, response
    assert problem_type(response) == "validation-error"
    assert field in {error["field"] for error in response["json"]["errors"]}
    assert nothing_stored()
    assert drain(QUEUE_URL) == []


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "email", "to": "not-an-email", "template": "verify_email"},
        {"kind": "sms", "to": "+15550100"},
        {"kind": "email", "to": "ops@example.com", "template": "verify_email", "cc": "x"},
    ],
    ids=["bad-recipient", "unknown-kind", "unknown-field"],
)
def test_admin_create_task_rejects_bad_body_with_422(call_api, body):
    # Given a body that breaks the schema
    # When an admin sends it
    response = create_task(call_api, body, admin())

    # Then it is a validation problem, and nothing is queued
    assert response["statusCode"] == 422, response
    assert drain(QUEUE_URL) == []
    assert drain(WEBHOOK_QUEUE_URL) == []


# --- POST /admin/tasks: webhook ---------------------------------------------------------------


def test_admin_create_task_queues_webhook_with_signing_secret(call_api):
    # Given an admin
    caller = admin()

    # When they queue a one-off webhook
    response = create_task(call_api, webhook_body(), caller)

    # Then it answers 202 with its signing secret, stores it and queues its id
    assert response["statusCode"] == 202, response
    task = response["json"]
    assert (task["kind"], task["status"], task["url"]) == ("webhook", "queued", PUBLIC_URL)
    assert task["signing_secret"].startswith("whsec_")
    stored = WebhookTaskModel.get(task_key(task["id"]), "TASK")
    assert (stored.secret, stored.created_by) == (task["signing_secret"], caller["subject_id"])
    assert json.loads(stored.body_json or "null") == {"event": "ping"}
    assert bodies(WEBHOOK_QUEUE_URL) == [{"task_id": task["id"], "slot": "once", "trigger": "once"}]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ({"url": "http://10.0.0.1/"}, "url"),
        ({"url": "http://127.0.0.1:9000/"}, "url"),
        ({"url": "ftp://93.184.215.14/"}, "url"),
        ({"headers": {"Kumo-Signature": "forged"}}, "headers"),
    ],
    ids=["metadata", "private", "loopback", "ftp", "reserved-header"],
)
def test_admin_create_task_rejects_unsafe_webhook_with_422(call_api, fields, field):
    # Given a webhook request the SSRF guard refuses
    # When an admin queues it
    response = create_task(call_api, webhook_body(**fields), admin())

    # Then it is a validation problem on that field, and nothing is stored or queued
    assert response["statusCode"] == 422, response
    assert [error["field"] for error in response["json"]["errors"]] == [field]
    assert nothing_stored()
    assert drain(WEBHOOK_QUEUE_URL) == []


@pytest.mark.parametrize("body", [email_body(), webhook_body()], ids=["email", "webhook"])
def test_admin_create_task_refuses_non_admin_with_403(call_api, body):
    # Given a signed-in user without the admin role
    # When they queue a task
    response = create_task(call_api, body, member())

    # Then it is forbidden, and nothing is stored or queued
    assert response["statusCode"] == 403, response
    assert nothing_stored()
    assert drain(QUEUE_URL) == drain(WEBHOOK_QUEUE_URL) == []


def test_admin_create_task_refuses_anonymous_caller_with_401(call_api):
    # Given no principal
    # When a task is queued
    response = create_task(call_api, email_body(), None)

    # Then it is unauthorized
    assert response["statusCode"] == 401, response


# --- GET /admin/tasks/{id} --------------------------------------------------------------------


def test_admin_get_task_answers_email_task(call_api):
    # Given a queued e-mail
    caller = admin()
    task_id = create_task(call_api, email_body(), caller)["json"]["id"]

    # When an admin reads it
    response = get_task(call_api, task_id, caller)

    # Then it answers where it stands, without its params
    assert response["statusCode"] == 200, response
    task = response["json"]
    assert (task["id"], task["kind"], task["status"]) == (task_id, "email", "queued")
    assert (task["template"], task["recipient"], task["attempts"]) == (
        "verify_email",
        "ops@example.com",
        0,
    )
    assert VERIFY_PARAMS["token"] not in response["body"]


def test_admin_get_task_answers_webhook_task_without_secret(call_api):
    # Given a queued one-off webhook
    caller = admin()
    created = create_task(call_api, webhook_body(), caller)["json"]

    # When an admin reads it
    response = get_task(call_api, created["id"], caller)

    # Then it answers its kind and URL, and not its secret
    assert response["statusCode"] == 200, response
    task = response["json"]
    assert (task["kind"], task["url"], task["status"]) == ("webhook", PUBLIC_URL, "queued")
    assert task["signing_secret"] is None
    assert created["signing_secret"] not in response["body"]


@pytest.mark.parametrize("task_id", [new_id(), "not-a-task-id"], ids=["unknown", "malformed"])
def test_admin_get_task_answers_404_for_unknown_id(call_api, task_id):
    # Given an id no task has
    # When an admin reads it
    response = get_task(call_api, task_id, admin())

    # Then it is not found
    assert response["statusCode"] == 404, response
    assert problem_type(response) == "not-found"


def test_admin_get_task_does_not_answer_scheduled_task_ids(call_api):
    # Given an item of a scheduled task (another key space)
    task_id = new_id()
    RunModel(
        scheduled_key(task_id),
        run_key("2090-01-01T10:05:00.000Z", 1),
        slot="2090-01-01T10:05:00.000Z",
        trigger="schedule",
        attempt=1,
        started_at="2090-01-01T10:05:01.000Z",
        duration_ms=1,
        outcome="succeeded",
        expires_at=0,
    ).save()

    # When an admin reads that id as a task
    response = get_task(call_api, task_id, admin())

    # Then it is not found
    assert response["statusCode"] == 404, response


def test_admin_get_task_refuses_non_admin_with_403(call_api):
    # Given a queued e-mail
    task_id = create_task(call_api, email_body(), admin())["json"]["id"]

    # When a user without the admin role reads it
    response = get_task(call_api, task_id, member())

    # Then it is forbidden
    assert response["statusCode"] == 403, response


# --- GET /admin/dead-letters ------------------------------------------------------------------


def test_admin_list_dead_letters_lists_webhook_dlq_with_task_ids(call_api):
    # Given two messages on the webhook dead-letter queue
    first, second = new_id(), new_id()
    ids = {
        dead_letter(WEBHOOK_DLQ_URL, {"task_id": first, "slot": "once", "trigger": "once"}),
        dead_letter(
            WEBHOOK_DLQ_URL,
            {"task_id": second, "slot": "2090-01-01T10:05:00.000Z", "trigger": "schedule"},
        ),
    }

    # When an admin lists the webhook dead letters
    response = list_dead_letters(call_api, admin(), queue="webhooks")

    # Then both are listed with their task ids and the queue's total
    assert response["statusCode"] == 200, response
    items = response["json"]["items"]
    assert {item["message_id"] for item in items} == ids
    assert {item["task_id"] for item in items} == {first, second}
    assert {item["queue"] for item in items} == {"webhooks"}
    assert all(item["sent_at"] and item["receive_count"] >= 1 for item in items)
    assert response["json"]["approximate_total"] == 2


def test_admin_list_dead_letters_defaults_to_webhooks(call_api):
    # Given one message on each dead-letter queue
    webhook_id = dead_letter(WEBHOOK_DLQ_URL, {"task_id": new_id()})
    dead_letter(MAIL_DLQ_URL, {"task_id": new_id()})

    # When an admin lists dead letters without naming a queue
    response = list_dead_letters(call_api, admin())

    # Then the webhook queue is listed
    assert [item["message_id"] for item in response["json"]["items"]] == [webhook_id]


def test_admin_list_dead_letters_lists_mail_dlq(call_api):
    # Given one message on each dead-letter queue
    mail_id = dead_letter(MAIL_DLQ_URL, {"task_id": "mail-task"})
    dead_letter(WEBHOOK_DLQ_URL, {"task_id": "webhook-task"})

    # When an admin lists the mail dead letters
    response = list_dead_letters(call_api, admin(), queue="mail")

    # Then only the mail message is listed, without a webhook error
    assert response["statusCode"] == 200, response
    (item,) = response["json"]["items"]
    assert (item["message_id"], item["queue"], item["task_id"]) == (mail_id, "mail", "mail-task")
    assert item["last_error"] is None
    assert response["json"]["approximate_total"] == 1


def test_admin_list_dead_letters_releases_messages_after_peeking(call_api):
    # Given two webhook dead letters
    ids = {dead_letter(WEBHOOK_DLQ_URL, {"task_id": new_id()}) for _ in range(2)}

    # When an admin lists them
    list_dead_letters(call_api, admin(), queue="webhooks")

    # Then both are receivable again at once: the list was a peek
    assert {message["MessageId"] for message in drain(WEBHOOK_DLQ_URL)} == ids


def test_admin_list_dead_letters_honours_limit(call_api):
    # Given three webhook dead letters
    for _ in range(3):
        dead_letter(WEBHOOK_DLQ_URL, {"task_id": new_id()})

    # When an admin lists one
    response = list_dead_letters(call_api, admin(), queue="webhooks", limit="1")

    # Then one is listed, the total still counts all three, and all stay receivable
    assert len(response["json"]["items"]) == 1
    assert response["json"]["approximate_total"] == 3
    assert len(drain(WEBHOOK_DLQ_URL)) == 3


def test_admin_list_dead_letters_shows_last_error_of_webhook_slot(call_api):
    # Given a dead-lettered scheduled slot whose last logged attempt got a 503
    task_id, slot = new_id(), "2090-01-01T10:05:00.000Z"
    for attempt, status in ((1, 500), (2, 503)):
        RunModel(
            scheduled_key(task_id),
            run_key(slot, attempt),
            slot=slot,
            trigger="schedule",
            attempt=attempt,
            started_at=slot,
            duration_ms=3,
            outcome="retry",
            status_code=status,
            error=f"http {status}",
            expires_at=0,
        ).save()
    dead_letter(WEBHOOK_DLQ_URL, {"task_id": task_id, "slot": slot, "trigger": "schedule"})

    # When an admin lists the webhook dead letters
    response = list_dead_letters(call_api, admin(), queue="webhooks")

    # Then the item shows the last error
    (item,) = response["json"]["items"]
    assert item["last_error"] == "http 503"


def test_admin_list_dead_letters_shows_unreadable_body_raw(call_api):
    # Given a dead letter whose body is not JSON
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=WEBHOOK_DLQ_URL, MessageBody="not json at all")

    # When an admin lists the webhook dead letters
    response = list_dead_letters(call_api, admin(), queue="webhooks")

    # Then it is listed with its raw body and no task id
    (item,) = response["json"]["items"]
    assert (item["body"], item["task_id"]) == ({"raw": "not json at all"}, None)


def test_admin_list_dead_letters_refuses_non_admin_with_403(call_api):
    # Given a dead letter
    dead_letter(WEBHOOK_DLQ_URL, {"task_id": new_id()})

    # When a user without the admin role lists them
    response = list_dead_letters(call_api, member(), queue="webhooks")

    # Then it is forbidden, and the message was not even peeked (still visible)
    assert response["statusCode"] == 403, response
    assert len(drain(WEBHOOK_DLQ_URL)) == 1


@pytest.mark.parametrize("query", [{"queue": "sms"}, {"limit": "0"}, {"limit": "101"}])
def test_admin_list_dead_letters_rejects_bad_query_with_422(call_api, query):
    # Given an admin
    # When they list a queue that does not exist, or an out-of-range page
    response = list_dead_letters(call_api, admin(), **query)

    # Then it is a validation problem
    assert response["statusCode"] == 422, response


# --- POST /admin/dead-letters/redrive ---------------------------------------------------------


def test_admin_redrive_moves_chosen_message_back_tagged(call_api):
    # Given two webhook dead letters
    body = {"task_id": new_id(), "slot": "once", "trigger": "once"}
    chosen = dead_letter(WEBHOOK_DLQ_URL, body)
    other = dead_letter(WEBHOOK_DLQ_URL, {"task_id": new_id(), "slot": "once", "trigger": "once"})

    # When an admin redrives one of them by id
    response = redrive(call_api, {"queue": "webhooks", "message_ids": [chosen]}, admin())

    # Then exactly that one is back on the webhook queue, tagged with its original id,
    # and gone from the dead-letter queue, which still holds the other
    assert response["statusCode"] == 200, response
    assert response["json"] == {"moved": [chosen], "not_found": []}
    assert bodies(WEBHOOK_QUEUE_URL) == [body | {"redrive_of": chosen}]
    assert [message["MessageId"] for message in drain(WEBHOOK_DLQ_URL)] == [other]


def test_admin_redrive_answers_unknown_ids_as_not_found(call_api):
    # Given one webhook dead letter
    present = dead_letter(WEBHOOK_DLQ_URL, {"task_id": new_id()})

    # When an admin redrives it and an id that is not on the queue
    response = redrive(
        call_api, {"queue": "webhooks", "message_ids": [present, "gone-message-id"]}, admin()
    )

    # Then the known one moved and the unknown one is reported
    assert response["json"] == {"moved": [present], "not_found": ["gone-message-id"]}
    assert len(drain(WEBHOOK_QUEUE_URL)) == 1


def test_admin_redrive_without_ids_moves_up_to_limit(call_api):
    # Given three webhook dead letters
    ids = {dead_letter(WEBHOOK_DLQ_URL, {"task_id": new_id()}) for _ in range(3)}

    # When an admin redrives without ids, two at most
    response = redrive(call_api, {"queue": "webhooks", "limit": 2}, admin())

    # Then two moved, one stays, and nothing is reported missing
    moved = response["json"]["moved"]
    assert len(moved) == 2
    assert set(moved) < ids
    assert response["json"]["not_found"] == []
    assert sorted(body["redrive_of"] for body in bodies(WEBHOOK_QUEUE_URL)) == sorted(moved)
    assert [message["MessageId"] for message in drain(WEBHOOK_DLQ_URL)] == list(ids - set(moved))


def test_admin_redrive_without_ids_moves_all_by_default(call_api):
    # Given three webhook dead letters
    for _ in range(3):
        dead_letter(WEBHOOK_DLQ_URL, {"task_id": new_id()})

    # When an admin redrives the queue
    response = redrive(call_api, {"queue": "webhooks"}, admin())

    # Then all three moved
    assert len(response["json"]["moved"]) == 3
    assert drain(WEBHOOK_DLQ_URL) == []
    assert len(drain(WEBHOOK_QUEUE_URL)) == 3


def test_admin_redrive_moves_mail_back_to_mail_queue(call_api):
    # Given a mail dead letter
    message_id = dead_letter(MAIL_DLQ_URL, {"task_id": "mail-task"})

    # When an admin redrives the mail queue
    response = redrive(call_api, {"queue": "mail"}, admin())

    # Then it is back on the mail queue, not the webhook one
    assert response["json"]["moved"] == [message_id]
    assert bodies(QUEUE_URL) == [{"task_id": "mail-task", "redrive_of": message_id}]
    assert drain(WEBHOOK_QUEUE_URL) == []


def test_admin_redrive_refuses_non_admin_with_403(call_api):
    # Given a webhook dead letter
    dead_letter(WEBHOOK_DLQ_URL, {"task_id": new_id()})

    # When a user without the admin role redrives
    response = redrive(call_api, {"queue": "webhooks"}, member())

    # Then it is forbidden and the message stays dead-lettered
    assert response["statusCode"] == 403, response
    assert drain(WEBHOOK_QUEUE_URL) == []
    assert len(drain(WEBHOOK_DLQ_URL)) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"queue": "sms"},
        {},
        {"queue": "webhooks", "limit": 0},
        {"queue": "webhooks", "limit": 101},
        {"queue": "webhooks", "message_ids": ["m"] * 101},
        {"queue": "webhooks", "everything": True},
    ],
    ids=["bad-queue", "no-queue", "limit-0", "limit-101", "too-many-ids", "unknown-field"],
)
def test_admin_redrive_rejects_bad_body_with_422(call_api, body):
    # Given a webhook dead letter
    dead_letter(WEBHOOK_DLQ_URL, {"task_id": new_id()})

    # When an admin sends a bad redrive request
    response = redrive(call_api, body, admin())

    # Then it is a validation problem and nothing moved
    assert response["statusCode"] == 422, response
    assert drain(WEBHOOK_QUEUE_URL) == []
