"""SQS kumo-<stage>-mail -> the mailer function -> SES."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from kumo.tasks import service
from kumo.tasks.models import EmailTaskModel, task_key
from kumo.tasks.templates import TemplateError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from tests.unit.conftest import QUEUE_URL, FakeContext, load_handler

pytestmark = pytest.mark.usefixtures("aws")

VERIFY_PARAMS = {
    "display_name": "Ada",
    "token": "one-time-token-for-the-mailer-test",
    "link": "https://app.kumo.test/auth/verify-email?token=one-time-token-for-the-mailer-test",
}


REPORT_PARAMS: dict[str, Any] = {
    "display_name": "Ada",
    "period_start": "2026-04-27",
    "period_end": "2026-05-03",
    "summary": [{"label": "Active devices", "value": 12}, {"label": "Uptime %", "value": 99.5}],
    "highlights": ["Boiler 3 ran hot on Tuesday"],
    "link": "https://app.kumo.test/reports/R1",
}


def sent_messages() -> list[Any]:
    return list(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)


def queued_verification(recipient: str) -> str:
    return service.enqueue_email(to=recipient, template="verify_email", params=VERIFY_PARAMS)


def stored_task(task_id: str) -> EmailTaskModel:
    return EmailTaskModel.get(task_key(task_id), "TASK")


def nothing_stored_or_queued() -> bool:
    tasks = list(EmailTaskModel.scan())
    queued = boto3.client("sqs").receive_message(QueueUrl=QUEUE_URL).get("Messages", [])
    return tasks == [] and queued == []


@pytest.fixture
def sqs_event(
    load_event: Callable[[str], dict[str, Any]],
) -> Callable[..., dict[str, Any]]:
    """An SQS event from events/tasks/mailer/message.json with one record per task id."""

    def build(*task_ids: str) -> dict[str, Any]:
        event = load_event("tasks/mailer/message")
        (template,) = event["Records"]
        event["Records"] = [
            template | {"messageId": f"message-{n}", "body": json.dumps({"task_id": task_id})}
            for n, task_id in enumerate(task_ids)
        ]
        return event

    return build


def run_mailer(event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = load_handler("tasks/mailer").lambda_handler(event, FakeContext())
    return result


def test_mailer_sends_queued_email_through_ses(sqs_event):
    # Given a queued verification e-mail
    task_id = queued_verification("mailer-send@example.com")

    # When the mailer receives its message
    result = run_mailer(sqs_event(task_id))

    # Then SES sent it from the configured sender, with the rendered template
    assert result == {"batchItemFailures": []}
    (message,) = sent_messages()
    assert message.source == "no-reply@kumo.test"
    assert message.destinations["ToAddresses"] == ["mailer-send@example.com"]
    assert message.subject == "Confirm your Kumo e-mail address"
    assert VERIFY_PARAMS["link"] in message.body


def test_mailer_marks_task_sent_and_clears_params(sqs_event):
    # Given a queued e-mail whose params hold a one-time link
    task_id = queued_verification("mailer-mark@example.com")

    # When the mailer delivers it
    run_mailer(sqs_event(task_id))

    # Then the task is sent, records SES's message id, and no longer holds the link
    task = stored_task(task_id)
    assert task.status == "sent"
    assert task.sent_at is not None
    assert task.attempts == 1
    assert task.message_id == sent_messages()[0].id
    assert task.params_json == "{}"


def test_mailer_does_not_resend_redelivered_message(sqs_event):
    # Given a message that was already delivered once
    task_id = queued_verification("mailer-redelivered@example.com")
    run_mailer(sqs_event(task_id))

    # When SQS delivers it again
    result = run_mailer(sqs_event(task_id))

    # Then it succeeds without a second e-mail
    assert result == {"batchItemFailures": []}
    assert len(sent_messages()) == 1
    assert stored_task(task_id).attempts == 1


def test_mailer_reports_unknown_task_and_sends_the_rest(sqs_event):
    # Given a batch with an unknown task id and a good one
    good = queued_verification("mailer-partial@example.com")
    event = sqs_event("01HZMAILERTESTUNKNOWNTASK1", good)

    # When the mailer processes the batch
    result = run_mailer(event)

    # Then only the unknown record is reported for retry, and the good one is sent
    assert result == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert [m.destinations["ToAddresses"] for m in sent_messages()] == [
        ["mailer-partial@example.com"]
    ]
    assert stored_task(good).status == "sent"


def test_mailer_reports_malformed_body(sqs_event):
    # Given a batch where one record's body is not the JSON the queue carries
    good = queued_verification("mailer-malformed@example.com")
    event = sqs_event("unused", good)
    event["Records"][0]["body"] = "not json"

    # When the mailer processes the batch
    result = run_mailer(event)

    # Then only the malformed record is reported
    assert result == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert len(sent_messages()) == 1


def test_mailer_fails_invocation_when_every_record_fails(sqs_event):
    # Given a batch in which no record can be delivered
    event = sqs_event("01HZMAILERTESTUNKNOWNTASK2")

    # When the mailer processes it
    # Then the whole invocation fails, so SQS retries the batch
    with pytest.raises(BatchProcessingError):
        run_mailer(event)


def test_mailer_sends_weekly_report_with_its_rows(sqs_event):
    # Given a queued weekly report, whose params hold lists of objects
    task_id = service.enqueue_email(
        to="mailer-report@example.com", template="weekly_report", params=REPORT_PARAMS
    )

    # When the mailer delivers it
    result = run_mailer(sqs_event(task_id))

    # Then the sent mail carries the rows and the highlight
    assert result == {"batchItemFailures": []}
    (message,) = sent_messages()
    assert message.subject == "Your Kumo weekly report, 2026-04-27 to 2026-05-03"
    assert ">Active devices</th>" in message.body
    assert ">99.5</td>" in message.body
    assert ">Boiler 3 ran hot on Tuesday</li>" in message.body


def test_enqueue_email_stores_nested_params_exactly():
    # Given params with lists, objects and numbers
    # When enqueuing a weekly report with them
    task_id = service.enqueue_email(
        to="mailer-nested@example.com", template="weekly_report", params=REPORT_PARAMS
    )

    # Then the stored task gives them back unchanged, numbers still numbers
    assert json.loads(stored_task(task_id).params_json) == REPORT_PARAMS


def test_enqueue_email_refuses_unknown_template():
    # Given a template name nobody defined
    # When enqueuing a mail with it
    # Then it fails, naming the template, before anything is stored or queued
    with pytest.raises(TemplateError, match="Unknown e-mail template 'nope'"):
        service.enqueue_email(to="mailer-unknown@example.com", template="nope", params={})
    assert nothing_stored_or_queued()


def test_enqueue_email_refuses_wrong_params_before_storing():
    # Given verification params without the link
    params = {"display_name": "Ada", "token": "t0k3n"}

    # When enqueuing the mail
    # Then it fails, naming the param, before anything is stored or queued
    with pytest.raises(TemplateError, match="link is missing"):
        service.enqueue_email(
            to="mailer-params@example.com", template="verify_email", params=params
        )
    assert nothing_stored_or_queued()
