"""GET /api/v1/scheduled-tasks/{task_id}: one of the caller's scheduled tasks."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.tasks import scheduled_tasks
from kumo.tasks.schemas import ScheduledTaskOut

app = make_resolver()


@app.get("/api/v1/scheduled-tasks/<task_id>", tags=["scheduled-tasks"])
def get_scheduled_task(task_id: str) -> ScheduledTaskOut:
    task = scheduled_tasks.get_task(owner_id=current_principal(app).user_id, task_id=task_id)
    return scheduled_tasks.task_out(task)


lambda_handler = http_handler(app)
