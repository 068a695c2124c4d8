"""GET /api/v1/scheduled-tasks/{task_id}/runs: the task's execution log, newest first."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page
from kumo.tasks import scheduled_tasks
from kumo.tasks.schemas import RunOut

app = make_resolver()


@app.get("/api/v1/scheduled-tasks/<task_id>/runs", tags=["scheduled-tasks"])
def list_task_runs(
    task_id: str,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[RunOut]:
    runs, next_cursor = scheduled_tasks.list_runs(
        owner_id=current_principal(app).user_id, task_id=task_id, limit=limit, cursor=cursor
    )
    return Page[RunOut](items=[scheduled_tasks.run_out(r) for r in runs], next_cursor=next_cursor)


lambda_handler = http_handler(app)
