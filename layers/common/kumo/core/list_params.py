"""The `limit` and `cursor` query parameters every list route takes.

Apart from kumo.core.pagination because these need Powertools' OpenAPI params, which only
the list handlers import; the workers that import pagination stay without them.
"""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from kumo.core.pagination import MAX_LIMIT

# Absent means the service's default page size (pagination.DEFAULT_LIMIT).
Limit = Annotated[int | None, Query(ge=1, le=MAX_LIMIT)]
# The bound turns oversized input away before it is decoded.
Cursor = Annotated[str | None, Query(max_length=2048)]
