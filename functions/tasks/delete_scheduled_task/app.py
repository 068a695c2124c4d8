"""DELETE /api/v1/scheduled-tasks/{task_id}: delete a task; its run log expires on its own."""

from aws_lambda_powertools.event_handler import Response
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.tasks import scheduled_tasks

app = make_resolver()


@app.delete("/api/v1/scheduled-tasks/<task_id>", status_code=204, tags=["scheduled-tasks"])
def delete_scheduled_task(task_id: str) -> Response[None]:
    scheduled_tasks.delete_task(owner_id=current_principal(app).user_id, task_id=task_id)
    return Response(status_code=204)


lambda_handler = http_handler(app)
