"""GET /api/v1/admin/dead-letters: what the mail or webhook queue gave up on (admins only)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.tasks import dead_letters
from kumo.tasks.schemas import DeadLetterList, DeadLetterQueue

app = make_resolver()


@app.get("/api/v1/admin/dead-letters", tags=["admin"])
def admin_list_dead_letters(
    queue: DeadLetterQueue = "webhooks",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> DeadLetterList:
    current_principal(app).require_role("admin")
    return DeadLetterList(
        items=dead_letters.list_dead_letters(queue, limit),
        approximate_total=dead_letters.approximate_total(queue),
    )


lambda_handler = http_handler(app)
