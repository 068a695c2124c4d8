"""Collaborative sketches (/api/v1/chat/channels/{id}/sketches and `draw` on the socket,
ADR 29): a channel's drawings, made of operations stored append-only.

An operation is a stroke, or the erasing or restoring of strokes (tombstones: nothing is ever
changed or removed, so every state the sketch went through can be replayed). Each gets the
sketch's next sequence number, gapless as a channel's messages are, is stored and is pushed to
the sketch's viewers. Every SEGMENT_SIZE operations, a segment is compacted into S3
(kumo.chat.segments), so a late joiner loads a few gzipped files and the short tail after them
instead of one giant frame.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aws_lambda_powertools import Logger

from kumo.chat import access, live, segments
from kumo.chat.models import (
    OP_PREFIX,
    SKETCH_PREFIX,
    OpModel,
    RateCounterModel,
    SegmentModel,
    SentModel,
    SketchModel,
    SketchRefModel,
    channel_key,
    op_sort_key,
    sent_sort_key,
    sketch_key,
)
from kumo.chat.schemas import (
    CreateSketchRequest,
    DrawFrame,
    EraseOp,
    OpOut,
    RestoreOp,
    SketchLoadOut,
    SketchOut,
    StrokeOp,
)
from kumo.chat.segments import SEGMENT_SIZE
from kumo.core import abuse_limits as limits
from kumo.core import clock, dynamo, rate_limit
from kumo.core.errors import Conflict, KumoError, NotFound, invalid
from kumo.core.ids import new_id
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor

logger = Logger(child=True)

# Operations a load answers after the last segment; more are read with `after_seq`.
TAIL_LIMIT: Final = 1000
_ROUNDS: Final = 10
_LAST: Final = 10**12 - 1
SENT_KEEP_SECONDS: Final = 86_400


def create_sketch(*, user_id: str, channel_id: str, request: CreateSketchRequest) -> SketchModel:
    channel, _ = access.member_channel(user_id, channel_id)
    sketch_id, now = new_id(), clock.utc_iso()
    sketch = SketchModel(
        sketch_key(sketch_id),
        sketch_id=sketch_id,
        channel_id=channel_id,
        org_id=channel.org_id,
        title=request.title,
        width=request.width,
        height=request.height,
        created_by=user_id,
        created_at=now,
    )
    ref = SketchRefModel(
        channel_key(channel_id),
        f"{SKETCH_PREFIX}{sketch_id}",
        sketch_id=sketch_id,
        title=request.title,
        created_by=user_id,
        created_at=now,
    )
    with dynamo.transaction(lambda: None, changed="The channel changed meanwhile.") as write:
        write.save(sketch, condition=SketchModel.pk.does_not_exist())
        write.save(ref)
    logger.info("sketch created", sketch_id=sketch_id, channel_id=channel_id)
    return sketch


def list_sketches(
    *, user_id: str, channel_id: str, limit: int | None, cursor: str | None
) -> tuple[list[SketchModel], str | None]:
    """The channel's sketches, oldest first (their ids grow with time)."""
    access.member_channel(user_id, channel_id)
    partition = channel_key(channel_id)
    refs = SketchRefModel.query(
        partition,
        SketchRefModel.sk.startswith(SKETCH_PREFIX),
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(
            cursor, partition=("pk", partition), sort_prefix=("sk", SKETCH_PREFIX)
        ),
    )
    ids = [ref.sketch_id for ref in refs]
    found = {s.sketch_id: s for s in SketchModel.batch_get([(sketch_key(i), "META") for i in ids])}
    return [found[i] for i in ids if i in found], encode_cursor(refs.last_evaluated_key)


def get_sketch(*, user_id: str, channel_id: str, sketch_id: str) -> SketchModel:
    return access.member_sketch(user_id, sketch_id, channel_id)[1]


# --- drawing --------------------------------------------------------------------------------


def _check_fits(sketch: SketchModel, op: StrokeOp | EraseOp | RestoreOp) -> None:
    if isinstance(op, StrokeOp):
        width, height = int(sketch.width), int(sketch.height)
        if any(x > width or y > height for x, y in op.points):
            raise invalid("op.points", f"Points must lie within the canvas, {width} by {height}.")
        return
    newest = int(sketch.seq)
    if any(target > newest for target in op.strokes):
        raise invalid("op.strokes", f"The sketch's newest operation is {newest}.")


def _rounded(op: StrokeOp | EraseOp | RestoreOp) -> dict[str, Any]:
    """The operation as stored and pushed: points to a tenth of a unit (what a screen shows),
    which keeps a stroke's JSON about a third shorter."""
    data = op.model_dump()
    if isinstance(op, StrokeOp):
        data["points"] = [[round(x, 1), round(y, 1)] for x, y in op.points]
    return data


def draw(*, user_id: str, frame: DrawFrame, connection_id: str | None) -> tuple[OpOut, bool]:
    """Store one operation and push it to the sketch's viewers; answers it and whether it was
    a retry of one stored already (same client id)."""
    channel, sketch = access.member_sketch(user_id, frame.sketch_id)
    earlier = _replay(frame.sketch_id, user_id, frame.client_id)
    if earlier is not None:
        return op_out(earlier), True
    _check_fits(sketch, frame.op)
    spends = [(limits.SKETCH_OP_PER_USER, user_id)]
    if connection_id:
        spends.append((limits.SKETCH_OP_PER_CONNECTION, connection_id))
    spent = rate_limit.spend_all(RateCounterModel, spends)
    try:
        stored, replayed = _store(sketch, user_id, _rounded(frame.op), frame.client_id)
    except KumoError:
        rate_limit.refund_all(spent)
        raise
    out = op_out(stored)
    if replayed:
        rate_limit.refund_all(spent)
        return out, True
    live.tell_sketch(
        channel.org_id,
        frame.sketch_id,
        {"event": "sketch_op", "sketch_id": frame.sketch_id, "op": out.model_dump()},
    )
    if int(stored.seq) % SEGMENT_SIZE == 0:
        segments.request_compaction(frame.sketch_id)
    return out, False


def _replay(sketch_id: str, user_id: str, client_id: str | None) -> OpModel | None:
    if client_id is None:
        return None
    sent = dynamo.get_or_none(
        SentModel, sketch_key(sketch_id), sent_sort_key(user_id, client_id), consistent_read=True
    )
    if sent is None:
        return None
    return dynamo.get_or_none(
        OpModel, sketch_key(sketch_id), op_sort_key(int(sent.seq)), consistent_read=True
    )


def _store(
    sketch: SketchModel, user_id: str, op: dict[str, Any], client_id: str | None
) -> tuple[OpModel, bool]:
    created = clock.parse_iso(sketch.created_at)
    partition = sketch_key(sketch.sketch_id)
    for _ in range(_ROUNDS):
        current = access.find_sketch(sketch.sketch_id)
        if current is None:
            raise NotFound(access.NO_SKETCH)
        seq, now = int(current.seq) + 1, clock.now()
        stored = OpModel(
            partition,
            op_sort_key(seq),
            seq=seq,
            author_id=user_id,
            at=clock.utc_iso(now),
            t_ms=max(0, round((now - created) * 1000)),
            op=json.dumps(op, separators=(",", ":")),
            client_id=client_id,
        )
        try:
            with dynamo.transaction(lambda: None, changed="taken") as write:
                write.update(
                    SketchModel(partition),
                    actions=[SketchModel.seq.set(seq)],
                    condition=SketchModel.seq == seq - 1,
                )
                write.save(stored, condition=OpModel.sk.does_not_exist())
                if client_id is not None:
                    write.save(
                        SentModel(
                            partition,
                            sent_sort_key(user_id, client_id),
                            seq=seq,
                            expires_at=int(now) + SENT_KEEP_SECONDS,
                        ),
                        condition=SentModel.sk.does_not_exist(),
                    )
        except Conflict:
            earlier = _replay(sketch.sketch_id, user_id, client_id)
            if earlier is not None:
                return earlier, True
            continue
        return stored, False
    raise Conflict("The sketch is busy; send the operation again.")


# --- reading --------------------------------------------------------------------------------


def ops_after(
    *,
    user_id: str,
    channel_id: str,
    sketch_id: str,
    after_seq: int,
    limit: int | None,
    cursor: str | None,
) -> tuple[list[OpModel], str | None]:
    """Operations after `after_seq`, oldest first: what a viewer who saw a gap missed."""
    access.member_sketch(user_id, sketch_id, channel_id)
    partition = sketch_key(sketch_id)
    results = OpModel.query(
        partition,
        OpModel.sk.between(op_sort_key(after_seq + 1), op_sort_key(_LAST)),
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(
            cursor, partition=("pk", partition), sort_prefix=("sk", OP_PREFIX)
        ),
    )
    return list(results), encode_cursor(results.last_evaluated_key)


def load(*, user_id: str, channel_id: str, sketch_id: str) -> SketchLoadOut:
    """Everything to draw or replay the sketch: links to its compacted segments, then the
    operations after the last one (at most TAIL_LIMIT; `tail_next_seq` says where to go on)."""
    _, sketch = access.member_sketch(user_id, sketch_id, channel_id)
    stored = segments.of_sketch(sketch_id)
    compacted = int(stored[-1].last_seq) if stored else 0
    tail = list(
        OpModel.query(
            sketch_key(sketch_id),
            OpModel.sk.between(op_sort_key(compacted + 1), op_sort_key(_LAST)),
            limit=TAIL_LIMIT,
        )
    )
    more = tail and int(tail[-1].seq) < int(sketch.seq) and len(tail) == TAIL_LIMIT
    return SketchLoadOut(
        **sketch_out(sketch).model_dump(),
        segments=[segments.segment_out(s) for s in stored],
        tail=[op_out(op) for op in tail],
        tail_next_seq=int(tail[-1].seq) if more else None,
    )


def all_ops(sketch: SketchModel) -> list[dict[str, Any]]:
    """Every operation of the sketch in order, as stored (the SVG export reads them all)."""
    ops: list[dict[str, Any]] = []
    stored: list[SegmentModel] = segments.of_sketch(sketch.sketch_id)
    for segment in stored:
        ops.extend(segments.read(segment))
    compacted = int(stored[-1].last_seq) if stored else 0
    tail = OpModel.query(
        sketch_key(sketch.sketch_id),
        OpModel.sk.between(op_sort_key(compacted + 1), op_sort_key(_LAST)),
    )
    ops.extend(segments.op_dict(op) for op in tail)
    return ops


def op_out(op: OpModel) -> OpOut:
    return OpOut.model_validate(segments.op_dict(op))


def sketch_out(sketch: SketchModel) -> SketchOut:
    return SketchOut(
        id=sketch.sketch_id,
        channel_id=sketch.channel_id,
        org_id=sketch.org_id,
        title=sketch.title,
        width=int(sketch.width),
        height=int(sketch.height),
        created_by=sketch.created_by,
        created_at=sketch.created_at,
        last_seq=int(sketch.seq),
    )
