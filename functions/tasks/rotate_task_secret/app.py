"""POST /api/v1/scheduled-tasks/{task_id}/rotate-secret: a new signing secret, shown once."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.tasks import scheduled_tasks
from kumo.tasks.schemas import SigningSecretOut

app = make_resolver()


@app.post("/api/v1/scheduled-tasks/<task_id>/rotate-secret", tags=["scheduled-tasks"])
def rotate_task_secret(task_id: str) -> SigningSecretOut:
    secret = scheduled_tasks.rotate_secret(owner_id=current_principal(app).user_id, task_id=task_id)
    return SigningSecretOut(id=task_id, signing_secret=secret)


lambda_handler = http_handler(app)
