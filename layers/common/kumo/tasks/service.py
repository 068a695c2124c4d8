"""E-mail tasks: other contexts enqueue, the mailer function delivers through SES."""

from __future__ import annotations

import json

from aws_lambda_powertools import Logger

from kumo.core import aws, clock
from kumo.core.config import get_settings
from kumo.core.ids import new_id
from kumo.tasks.models import EmailTaskModel, task_key
from kumo.tasks.templates import TEMPLATES, render

logger = Logger(child=True)

TASK_RETENTION_SECONDS = 30 * 24 * 3600


def enqueue_email(*, to: str, template: str, params: dict[str, str]) -> str:
    """Store the task, then queue its id only: the worker loads the rest from the table."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown e-mail template {template}")
    task_id = new_id()
    EmailTaskModel(
        pk=task_key(task_id),
        task_id=task_id,
        template=template,
        recipient=to,
        params=params,
        created_at=clock.utc_iso(),
        expires_at=int(clock.now()) + TASK_RETENTION_SECONDS,
    ).save()
    aws.sqs().send_message(
        QueueUrl=get_settings().mail_queue_url,
        MessageBody=json.dumps({"task_id": task_id}),
    )
    logger.info("e-mail queued", task_id=task_id, template=template)
    return task_id


def deliver_email(task_id: str) -> None:
    """Send one queued e-mail. A redelivered message for a sent task does nothing."""
    task = EmailTaskModel.get(task_key(task_id), "TASK")
    if task.status == "sent":
        logger.info("e-mail already sent", task_id=task_id)
        return
    message = render(task.template, task.params.as_dict())
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
            EmailTaskModel.params.set({}),
        ]
    )
    logger.info("e-mail sent", task_id=task_id, template=task.template)
