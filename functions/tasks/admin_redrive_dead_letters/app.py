"""POST /api/v1/admin/dead-letters/redrive: send dead letters back to their queue (admins only)."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.tasks import dead_letters
from kumo.tasks.schemas import RedriveOut, RedriveRequest

app = make_resolver()


@app.post("/api/v1/admin/dead-letters/redrive", tags=["admin"])
def admin_redrive_dead_letters(body: RedriveRequest) -> RedriveOut:
    current_principal(app).require_role("admin")
    moved, not_found = dead_letters.redrive(
        body.queue, message_ids=body.message_ids, limit=body.limit
    )
    return RedriveOut(moved=moved, not_found=not_found)


lambda_handler = http_handler(app)
