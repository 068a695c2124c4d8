"""GET /api/v1/admin/tasks/{task_id}: the state of a queued e-mail or webhook (admins only)."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.tasks import service
from kumo.tasks.schemas import AdminTaskOut

app = make_resolver()


@app.get("/api/v1/admin/tasks/<task_id>", tags=["admin"])
def admin_get_task(task_id: str) -> AdminTaskOut:
    current_principal(app).require_role("admin")
    return service.task_status(task_id)


lambda_handler = http_handler(app)
