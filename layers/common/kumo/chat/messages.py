"""A channel's messages: sending (over HTTP and the WebSocket), history, catching up after a
gap, editing, deleting, and read markers (ADR 29).

Every message gets the channel's next sequence number, with no gaps: the transaction that
stores message n + 1 also moves the channel's counter from n, on the condition that it still
is n, so a number is used exactly when a message is stored. Two senders at once both read n;
one wins, the other reads again and takes n + 2. A client that sees n + 2 after n knows it
missed one and asks `after_seq=n`. A `client_id` makes a retried send answer the message the
first attempt stored.
"""

from __future__ import annotations

from typing import Final

from aws_lambda_powertools import Logger
from pynamodb.exceptions import UpdateError

from kumo.chat import access, live
from kumo.chat.errors import MessageDeleted
from kumo.chat.models import (
    MESSAGE_PREFIX,
    ChannelModel,
    MembershipModel,
    MessageModel,
    RateCounterModel,
    SentModel,
    SketchModel,
    channel_key,
    message_sort_key,
    sent_sort_key,
)
from kumo.chat.schemas import ImageOut, MessageOut, PostMessageRequest, SketchRefOut
from kumo.core import abuse_limits as limits
from kumo.core import clock, dynamo, rate_limit
from kumo.core.errors import Conflict, Forbidden, KumoError, NotFound, invalid
from kumo.core.ids import new_id
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor
from kumo.core.schemas import SPACE_CHARACTERS
from kumo.media import service as media
from kumo.orgs.service import require_org_role

logger = Logger(child=True)

# How often a send reads the counter again when other sends took the number it read.
_ROUNDS: Final = 10
# A client id answers its message this long: far longer than any client retries.
SENT_KEEP_SECONDS: Final = 86_400
_LAST: Final = 10**12 - 1
NO_MESSAGE: Final = "No such message."


def holder(channel_id: str) -> str:
    """What a file attached in a channel is held by (kumo.media.service.hold): the channel's
    members see it, through chat's routes only."""
    return f"chat:{channel_id}"


def _text(value: str, *, attached: bool) -> str:
    text = value.strip(SPACE_CHARACTERS)
    if not text and not attached:
        raise invalid("text", "A message needs text, an image or a sketch.")
    return text


def _sketch(channel_id: str, sketch_id: str | None) -> SketchModel | None:
    """The channel's sketch a message carries, as it is now (its snapshot)."""
    if sketch_id is None:
        return None
    sketch = access.find_sketch(sketch_id)
    if sketch is None or sketch.channel_id != channel_id:
        raise invalid("sketch_id", "No such sketch in this channel.")
    return sketch


def _replay(channel_id: str, user_id: str, client_id: str | None) -> MessageModel | None:
    if client_id is None:
        return None
    sent = dynamo.get_or_none(
        SentModel, channel_key(channel_id), sent_sort_key(user_id, client_id), consistent_read=True
    )
    if sent is None:
        return None
    return dynamo.get_or_none(
        MessageModel, channel_key(channel_id), message_sort_key(int(sent.seq)), consistent_read=True
    )


def post_message(
    *,
    user_id: str,
    channel_id: str,
    request: PostMessageRequest,
    connection_id: str | None = None,
) -> tuple[MessageOut, bool]:
    """Store the message and push it to the channel; answers it and whether it was a replay
    of an earlier send with the same client id (which spends no allowance)."""
    channel, member = access.member_channel(user_id, channel_id)
    attached = request.media_id is not None or request.sketch_id is not None
    text = _text(request.text, attached=attached)
    earlier = _replay(channel_id, user_id, request.client_id)
    if earlier is not None:
        return message_out(earlier, channel.org_id), True
    spends = [(limits.MESSAGE_PER_USER, user_id)]
    if connection_id:
        spends.append((limits.MESSAGE_PER_CONNECTION, connection_id))
    spent = rate_limit.spend_all(RateCounterModel, spends)
    try:
        if request.media_id is not None:
            ref = media.require_ready(
                request.media_id, org_id=channel.org_id, purpose="attachment", field="media_id"
            )
            media.hold(ref, holder(channel_id), field="media_id")
        sketch = _sketch(channel_id, request.sketch_id)
        mentioned = _mentioned(channel_id, user_id, request.mentions)
        message, replayed = _store(channel_id, user_id, text, request, sketch, mentioned)
    except KumoError:
        rate_limit.refund_all(spent)
        raise
    out = message_out(message, channel.org_id)
    if replayed:
        rate_limit.refund_all(spent)
        return out, True
    live.tell_channel(channel.org_id, channel_id, {"event": "message", "message": out.model_dump()})
    for mentioned_id in mentioned:
        live.tell_user(
            mentioned_id,
            {"event": "mention", "channel_id": channel_id, "org_id": channel.org_id,
             "seq": out.seq, "author_id": user_id},
        )  # fmt: skip
    _read_up_to(member, int(message.seq))  # what one wrote is not unread to oneself
    logger.info("message sent", channel_id=channel_id, seq=int(message.seq))
    return out, False


def _mentioned(channel_id: str, author_id: str, mentions: list[str]) -> list[str]:
    """The members a message names (not its author), each once; naming anyone else is a 422,
    so no one learns who is in a channel by mentioning them."""
    named = [user for user in dict.fromkeys(mentions) if user != author_id]
    if any(access.membership(channel_id, user) is None for user in named):
        raise invalid("mentions", "Only members of the channel can be mentioned.")
    return named


def _store(
    channel_id: str,
    user_id: str,
    text: str,
    request: PostMessageRequest,
    sketch: SketchModel | None,
    mentioned: list[str],
) -> tuple[MessageModel, bool]:
    for _ in range(_ROUNDS):
        current = access.find(channel_id)
        if current is None:
            raise NotFound(access.NO_CHANNEL)
        seq = int(current.seq) + 1
        now = clock.now()
        message = MessageModel(
            channel_key(channel_id),
            message_sort_key(seq),
            channel_id=channel_id,
            seq=seq,
            message_id=new_id(),
            author_id=user_id,
            text=text,
            media_id=request.media_id,
            sketch_id=sketch.sketch_id if sketch else None,
            sketch_seq=int(sketch.seq) if sketch else None,
            sketch_title=sketch.title if sketch else None,
            mentions=set(mentioned) or None,
            client_id=request.client_id,
            created_at=clock.utc_iso(now),
        )
        try:
            with dynamo.transaction(lambda: None, changed="taken") as write:
                write.update(
                    ChannelModel(channel_key(channel_id)),
                    actions=[ChannelModel.seq.set(seq)],
                    condition=ChannelModel.seq == seq - 1,
                )
                write.save(message, condition=MessageModel.sk.does_not_exist())
                if request.client_id is not None:
                    write.save(
                        SentModel(
                            channel_key(channel_id),
                            sent_sort_key(user_id, request.client_id),
                            seq=seq,
                            expires_at=int(now) + SENT_KEEP_SECONDS,
                        ),
                        condition=SentModel.sk.does_not_exist(),
                    )
        except Conflict:
            earlier = _replay(channel_id, user_id, request.client_id)
            if earlier is not None:
                return earlier, True  # the same send, stored meanwhile by its first attempt
            continue  # another send took the number: read the counter again
        return message, False
    raise Conflict("The channel is busy; send again.")


def find_message(channel_id: str, seq: int) -> MessageModel | None:
    return dynamo.get_or_none(
        MessageModel, channel_key(channel_id), message_sort_key(seq), consistent_read=True
    )


def list_messages(
    *,
    user_id: str,
    channel_id: str,
    after_seq: int | None,
    limit: int | None,
    cursor: str | None,
) -> tuple[str, list[MessageModel], str | None]:
    """With `after_seq`, what came after it, oldest first (catching up after a gap); without,
    the history newest first. Answers the channel's org with the page."""
    channel, _ = access.member_channel(user_id, channel_id)
    partition = channel_key(channel_id)
    start = decode_cursor(cursor, partition=("pk", partition), sort_prefix=("sk", MESSAGE_PREFIX))
    if after_seq is not None:
        condition = MessageModel.sk.between(
            message_sort_key(after_seq + 1), message_sort_key(_LAST)
        )
        results = MessageModel.query(
            partition, condition, limit=clamp_limit(limit), last_evaluated_key=start
        )
    else:
        results = MessageModel.query(
            partition,
            MessageModel.sk.startswith(MESSAGE_PREFIX),
            scan_index_forward=False,
            limit=clamp_limit(limit),
            last_evaluated_key=start,
        )
    return channel.org_id, list(results), encode_cursor(results.last_evaluated_key)


def _own_message(user_id: str, channel_id: str, seq: int) -> tuple[ChannelModel, MessageModel]:
    channel, _ = access.member_channel(user_id, channel_id)
    message = find_message(channel_id, seq)
    if message is None:
        raise NotFound(NO_MESSAGE)
    return channel, message


def edit_message(*, user_id: str, channel_id: str, seq: int, text: str) -> MessageOut:
    channel, message = _own_message(user_id, channel_id, seq)
    if message.author_id != user_id:
        raise Forbidden("Only its author edits a message.")
    if message.deleted:
        raise MessageDeleted("The message is deleted.")
    cleaned = _text(text, attached=message.media_id is not None or message.sketch_id is not None)
    try:
        message.update(
            actions=[MessageModel.text.set(cleaned), MessageModel.edited_at.set(clock.utc_iso())],
            condition=MessageModel.deleted == False,  # noqa: E712 (a condition, not a comparison)
        )
    except UpdateError as error:
        if dynamo.condition_failed(error):
            raise MessageDeleted("The message is deleted.") from error
        raise
    out = message_out(message, channel.org_id)
    live.tell_channel(
        channel.org_id, channel_id, {"event": "message_edited", "message": out.model_dump()}
    )
    return out


def delete_message(*, user_id: str, channel_id: str, seq: int) -> None:
    """The author or an org admin deletes a message; it keeps its number, without content.
    Deleting it again is a no-op."""
    channel, message = _own_message(user_id, channel_id, seq)
    if message.author_id != user_id:
        try:
            require_org_role(channel.org_id, user_id, "admin")
        except Forbidden as error:
            raise Forbidden("Only its author or an org admin deletes a message.") from error
    if message.deleted:
        return
    message.update(
        actions=[
            MessageModel.deleted.set(True),
            MessageModel.deleted_by.set(user_id),
            MessageModel.text.set(""),
            MessageModel.media_id.remove(),
            MessageModel.sketch_id.remove(),
        ]
    )
    live.tell_channel(
        channel.org_id,
        channel_id,
        {"event": "message_deleted", "channel_id": channel_id, "seq": seq, "deleted_by": user_id},
    )


def mark_read(*, user_id: str, channel_id: str, seq: int) -> MembershipModel:
    """Move the member's read marker forward to `seq` (never back)."""
    channel, member = access.member_channel(user_id, channel_id)
    if seq > int(channel.seq):
        raise invalid("seq", f"The channel's newest message is {int(channel.seq)}.")
    _read_up_to(member, seq)
    return member


def _read_up_to(member: MembershipModel, seq: int) -> None:
    """Move the marker forward; a marker further on already, or a member who left meanwhile,
    is left as it is."""
    try:
        member.update(
            actions=[MembershipModel.last_read_seq.set(seq)],
            condition=MembershipModel.sk.exists() & (MembershipModel.last_read_seq < seq),
        )
    except UpdateError as error:
        if not dynamo.condition_failed(error):
            raise


def message_out(message: MessageModel, org_id: str) -> MessageOut:
    image = None
    if message.media_id and not message.deleted:
        found = media.links_of(message.media_id, org_id)
        if found is not None:
            ref, links = found
            image = ImageOut(
                media_id=ref.media_id,
                content_type=ref.content_type,
                width=ref.width,
                height=ref.height,
                original=links.original,
                thumbnails=links.thumbnails,
                expires_at=links.expires_at,
            )
    sketch = None
    if message.sketch_id and not message.deleted:
        sketch = SketchRefOut(
            id=message.sketch_id,
            title=message.sketch_title or "",
            seq=int(message.sketch_seq or 0),
        )
    return MessageOut(
        id=message.message_id,
        channel_id=message.channel_id,
        seq=int(message.seq),
        author_id=message.author_id,
        text=message.text,
        image=image,
        sketch=sketch,
        mentions=sorted(message.mentions or ()),
        client_id=message.client_id,
        created_at=message.created_at,
        edited_at=message.edited_at,
        deleted=bool(message.deleted),
    )
