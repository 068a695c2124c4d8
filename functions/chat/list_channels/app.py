"""GET /api/v1/chat/channels?org_id=&scope=joined|public: the caller's channels in an org, or
the org's public ones, with unread counts where the caller is a member."""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from kumo.chat import channels
from kumo.chat.schemas import ChannelOut
from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.core.list_params import Cursor, Limit
from kumo.core.pagination import Page

app = make_resolver()


@app.get("/api/v1/chat/channels", tags=["chat"])
def list_channels(
    org_id: Annotated[str, Query(min_length=26, max_length=26)],
    scope: Literal["joined", "public"] = "joined",
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[ChannelOut]:
    found, next_cursor = channels.list_channels(
        user_id=current_principal(app).user_id,
        org_id=org_id,
        scope=scope,
        limit=limit,
        cursor=cursor,
    )
    items = [channels.channel_out(channel, member) for channel, member in found]
    return Page[ChannelOut](items=items, next_cursor=next_cursor)


lambda_handler = http_handler(app)
