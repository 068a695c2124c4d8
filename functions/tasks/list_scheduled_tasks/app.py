"""GET /api/v1/scheduled-tasks: the caller's scheduled tasks, newest first, paginated."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page
from kumo.tasks import scheduled_tasks
from kumo.tasks.schemas import ScheduledTaskOut

app = make_resolver()


@app.get("/api/v1/scheduled-tasks", tags=["scheduled-tasks"])
def list_scheduled_tasks(
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[ScheduledTaskOut]:
    tasks, next_cursor = scheduled_tasks.list_tasks(
        owner_id=current_principal(app).user_id, limit=limit, cursor=cursor
    )
    return Page[ScheduledTaskOut](
        items=[scheduled_tasks.task_out(t) for t in tasks], next_cursor=next_cursor
    )


lambda_handler = http_handler(app)
