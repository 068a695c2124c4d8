"""GET /api/v1/chat/channels/{channel_id}/messages?after_seq=: what came after a sequence number,
oldest first (to catch up after a gap), or without it the history, newest first."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.chat import messages
from kumo.chat.schemas import MessageOut
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page

app = make_resolver()


@app.get("/api/v1/chat/channels/<channel_id>/messages", tags=["chat"])
def list_messages(
    channel_id: str,
    after_seq: Annotated[int | None, Query(ge=0, le=10**12 - 2)] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[MessageOut]:
    org_id, found, next_cursor = messages.list_messages(
        user_id=current_principal(app).user_id,
        channel_id=channel_id,
        after_seq=after_seq,
        limit=limit,
        cursor=cursor,
    )
    items = [messages.message_out(m, org_id) for m in found]
    return Page[MessageOut](items=items, next_cursor=next_cursor)


lambda_handler = http_handler(app)
