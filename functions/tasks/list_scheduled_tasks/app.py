"""GET /api/v1/scheduled-tasks: the caller's scheduled tasks, newest first, paginated."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.pagination import Page
from kumo.tasks import scheduled_tasks
from kumo.tasks.schemas import ScheduledTaskOut

app = make_resolver()


@app.get("/api/v1/scheduled-tasks", tags=["scheduled-tasks"])
def list_scheduled_tasks(
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Page[ScheduledTaskOut]:
    tasks, next_cursor = scheduled_tasks.list_tasks(
        owner_id=current_principal(app).user_id, limit=limit, cursor=cursor
    )
    return Page[ScheduledTaskOut](
        items=[scheduled_tasks.task_out(t) for t in tasks], next_cursor=next_cursor
    )


lambda_handler = http_handler(app)
