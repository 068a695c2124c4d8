"""POST /api/v1/scheduled-tasks/{task_id}/run: queue one run now, outside the schedule."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.tasks import scheduled_tasks
from kumo.tasks.schemas import RunQueuedOut

app = make_resolver()


@app.post("/api/v1/scheduled-tasks/<task_id>/run", status_code=202, tags=["scheduled-tasks"])
def run_scheduled_task(task_id: str) -> RunQueuedOut:
    slot = scheduled_tasks.run_now(owner_id=current_principal(app).user_id, task_id=task_id)
    return RunQueuedOut(task_id=task_id, slot=slot)


lambda_handler = http_handler(app)
