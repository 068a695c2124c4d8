"""GET /api/v1/chat/channels/{channel_id}/sketches/{sketch_id}/strokes?after_seq=: a sketch's
operations after a sequence number, oldest first, with their times (to catch up after a gap)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.chat import sketches
from kumo.chat.schemas import OpOut
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page

app = make_resolver()


@app.get("/api/v1/chat/channels/<channel_id>/sketches/<sketch_id>/strokes", tags=["chat"])
def list_sketch_strokes(
    channel_id: str,
    sketch_id: str,
    after_seq: Annotated[int, Query(ge=0, le=10**12 - 2)] = 0,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[OpOut]:
    found, next_cursor = sketches.ops_after(
        user_id=current_principal(app).user_id,
        channel_id=channel_id,
        sketch_id=sketch_id,
        after_seq=after_seq,
        limit=limit,
        cursor=cursor,
    )
    return Page[OpOut](items=[sketches.op_out(op) for op in found], next_cursor=next_cursor)


lambda_handler = http_handler(app)
