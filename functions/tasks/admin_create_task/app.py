"""POST /api/v1/admin/tasks: queue an e-mail from a template, or a one-off webhook (admins only)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.tasks import service
from kumo.tasks.schemas import AdminTaskOut, AdminTaskRequest, EmailTaskRequest

app = make_resolver()


@app.post("/api/v1/admin/tasks", status_code=202, tags=["admin"])
def admin_create_task(body: Annotated[AdminTaskRequest, Body()]) -> AdminTaskOut:
    principal = current_principal(app)
    principal.require_role("admin")
    if isinstance(body, EmailTaskRequest):
        task_id = service.queue_email_for_admin(
            to=body.to, template=body.template, params=body.params
        )
        return service.task_status(task_id)
    task_id, secret = service.enqueue_webhook(
        url=body.url,
        method=body.method,
        headers=body.headers,
        body=body.body,
        created_by=principal.user_id,
    )
    return service.task_status(task_id).model_copy(update={"signing_secret": secret})


lambda_handler = http_handler(app)
