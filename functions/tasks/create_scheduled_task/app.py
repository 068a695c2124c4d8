"""POST /api/v1/scheduled-tasks: create a scheduled webhook task; its secret is shown once."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.tasks import scheduled_tasks
from kumo.tasks.schemas import CreateScheduledTaskRequest, ScheduledTaskCreated

app = make_resolver()


@app.post("/api/v1/scheduled-tasks", status_code=201, tags=["scheduled-tasks"])
def create_scheduled_task(body: CreateScheduledTaskRequest) -> ScheduledTaskCreated:
    task, secret = scheduled_tasks.create_task(
        owner_id=current_principal(app).user_id, request=body
    )
    return ScheduledTaskCreated(
        **scheduled_tasks.task_out(task).model_dump(), signing_secret=secret
    )


lambda_handler = http_handler(app)
