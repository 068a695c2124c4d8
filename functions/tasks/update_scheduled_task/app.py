"""PATCH /api/v1/scheduled-tasks/{task_id}: change a task's schedule, target, or pause/resume it."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.tasks import scheduled_tasks
from kumo.tasks.schemas import ScheduledTaskOut, UpdateScheduledTaskRequest

app = make_resolver()


@app.patch("/api/v1/scheduled-tasks/<task_id>", tags=["scheduled-tasks"])
def update_scheduled_task(task_id: str, body: UpdateScheduledTaskRequest) -> ScheduledTaskOut:
    task = scheduled_tasks.update_task(
        owner_id=current_principal(app).user_id, task_id=task_id, request=body
    )
    return scheduled_tasks.task_out(task)


lambda_handler = http_handler(app)
