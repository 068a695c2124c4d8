"""The tasks API for other contexts: queue an e-mail from a template or a one-off webhook.

E-mails are delivered by the mailer function through SES, webhooks by the webhook worker
(kumo.tasks.worker). Queue messages carry ids only; workers load the task from the table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from kumo.core import aws, clock, dynamo, metrics
from kumo.core.config import get_settings
from kumo.core.errors import NotFound, ValidationFailed, invalid
from kumo.core.ids import is_id, new_id
from kumo.tasks import webhook
from kumo.tasks.models import EmailTaskModel, WebhookTaskModel, task_key
from kumo.tasks.templates import TemplateError, check_params, render

if TYPE_CHECKING:
    from kumo.tasks.schemas import AdminTaskOut

logger = Logger(child=True)

TASK_RETENTION_SECONDS = 30 * 24 * 3600


def enqueue_email(*, to: str, template: str, params: Mapping[str, object]) -> str:
    """Store the task, then queue its id only: the worker loads the rest from the table.

    Raises TemplateError, before anything is stored, when the template does not take `params`.
    """
    check_params(template, params)
    task_id = new_id()
    EmailTaskModel(
        pk=task_key(task_id),
        task_id=task_id,
        template=template,
        recipient=to,
        params_json=json.dumps(dict(params)),
        created_at=clock.utc_iso(),
        expires_at=int(clock.now()) + TASK_RETENTION_SECONDS,
    ).save()
    aws.sqs().send_message(
        QueueUrl=get_settings().mail_queue_url,
        MessageBody=json.dumps({"task_id": task_id}),
    )
    logger.info("e-mail queued", task_id=task_id, template=template)
    return task_id


def deliver_record(record: dict[str, Any]) -> None:
    """One message of the mail queue: {"task_id": ...}."""
    deliver_email(json.loads(record["body"])["task_id"])


def deliver_email(task_id: str) -> None:
    """Send one queued e-mail. A redelivered message for a sent task does nothing."""
    task = EmailTaskModel.get(task_key(task_id), "TASK")
    if task.status == "sent":
        logger.info("e-mail already sent", task_id=task_id)
        return
    message = render(task.template, json.loads(task.params_json))
    task.update(actions=[EmailTaskModel.attempts.add(1)])
    result = aws.ses().send_email(
        Source=get_settings().mail_sender,
        Destination={"ToAddresses": [task.recipient]},
        Message={
            "Subject": {"Data": message.subject, "Charset": "UTF-8"},
            "Body": {
                "Text": {"Data": message.text, "Charset": "UTF-8"},
                "Html": {"Data": message.html, "Charset": "UTF-8"},
            },
        },
    )
    task.update(
        actions=[
            EmailTaskModel.status.set("sent"),
            EmailTaskModel.sent_at.set(clock.utc_iso()),
            EmailTaskModel.message_id.set(result["MessageId"]),
            EmailTaskModel.params_json.set("{}"),
        ]
    )
    metrics.count(metrics.MAILS_SENT)
    logger.info("e-mail sent", task_id=task_id, template=task.template)


def queue_email_for_admin(*, to: str, template: str, params: Mapping[str, object]) -> str:
    """enqueue_email for a request body: template mistakes become a 422 naming the params."""
    try:
        return enqueue_email(to=to, template=template, params=params)
    except TemplateError as error:
        raise ValidationFailed(str(error), errors=error.errors) from error


def enqueue_webhook(
    *,
    url: str,
    method: str,
    headers: Mapping[str, str],
    body: object | None,
    created_by: str,
    secret: str | None = None,
) -> tuple[str, str]:
    """Queue one signed call; returns the task id and the secret it is signed with.

    The target is checked here as well as at delivery, so a caller learns at once.
    """
    settings = get_settings()
    try:
        checked_url = webhook.check_target(url, allow_loopback=settings.webhook_allow_loopback)
        checked_headers = webhook.check_headers(headers)
    except webhook.UnsafeTarget as error:
        raise invalid("url", str(error)) from error
    except ValueError as error:
        raise invalid("headers", str(error)) from error
    task_id, secret = new_id(), secret or webhook.new_secret()
    WebhookTaskModel(
        pk=task_key(task_id),
        task_id=task_id,
        url=checked_url,
        method=method,
        headers_json=json.dumps(checked_headers, sort_keys=True),
        body_json=json.dumps(body, separators=(",", ":")) if body is not None else None,
        secret=secret,
        created_by=created_by,
        created_at=clock.utc_iso(),
        expires_at=int(clock.now()) + TASK_RETENTION_SECONDS,
    ).save()
    aws.sqs().send_message(
        QueueUrl=settings.webhook_queue_url,
        MessageBody=json.dumps({"task_id": task_id, "slot": "once", "trigger": "once"}),
    )
    logger.info("webhook queued", task_id=task_id)
    return task_id, secret


def task_status(task_id: str) -> AdminTaskOut:
    """Where a queued e-mail or webhook stands (its params and secret are not shown)."""
    # Imported here: the mailer imports this module and needs no response models.
    from kumo.tasks.schemas import AdminTaskOut

    if not is_id(task_id):
        raise NotFound("No such task.")
    email = dynamo.get_or_none(EmailTaskModel, task_key(task_id), "TASK")
    if email is None:
        raise NotFound("No such task.")
    if email.kind == "email":
        return AdminTaskOut(
            id=task_id,
            kind="email",
            status=email.status,
            created_at=email.created_at,
            template=email.template,
            recipient=email.recipient,
            attempts=int(email.attempts),
        )
    hook = WebhookTaskModel.get(task_key(task_id), "TASK")
    return AdminTaskOut(
        id=task_id, kind="webhook", status=hook.status, created_at=hook.created_at, url=hook.url
    )
