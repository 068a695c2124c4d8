"""A sketch's compacted segments: every SEGMENT_SIZE operations as one gzipped JSON file in
the data bucket (`sketches/<org>/<sketch>/<first>-<last>.json.gz`), so loading a sketch of
10,000 strokes reads 50 files straight from S3, side by side, not 10,000 items through a
function (ADR 29).

The draw that closes a segment queues the sketch's id; the consumer compacts every full
segment not compacted yet. A segment's key is fixed by its range and its record is written on
the condition that the sketch's `compacted_seq` still ends just before it, so a redelivered
or concurrent compaction writes the same bytes and records the segment once. The operations
stay in the table (the segments are a copy for loading), so nothing is lost if S3 or the
queue fails: the next full segment's compaction catches up.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from aws_lambda_powertools import Logger

from kumo.chat.models import (
    META,
    SEGMENT_PREFIX,
    OpModel,
    SegmentModel,
    SketchModel,
    op_sort_key,
    segment_sort_key,
    sketch_key,
)
from kumo.chat.schemas import SegmentOut
from kumo.core import aws, dynamo
from kumo.core.config import get_settings
from kumo.core.errors import Conflict

logger = Logger(child=True)

SEGMENT_SIZE: Final = 200
LINK_SECONDS: Final = 300


def request_compaction(sketch_id: str) -> None:
    """Queue the sketch for compaction; a failure is logged, as the next segment retries."""
    try:
        aws.sqs().send_message(
            QueueUrl=get_settings().sketch_compaction_queue_url,
            MessageBody=json.dumps({"sketch_id": sketch_id}),
        )
    except Exception:  # the operations are stored; compaction only speeds up loading
        logger.exception("sketch compaction not queued", sketch_id=sketch_id)


def of_sketch(sketch_id: str) -> list[SegmentModel]:
    return list(
        SegmentModel.query(
            sketch_key(sketch_id),
            SegmentModel.sk.startswith(SEGMENT_PREFIX),
            consistent_read=True,
        )
    )


def _key(sketch: SketchModel, first: int, last: int) -> str:
    return f"sketches/{sketch.org_id}/{sketch.sketch_id}/{first:012d}-{last:012d}.json.gz"


def compact(sketch_id: str) -> int:
    """Compact every full segment of the sketch not compacted yet; how many were written."""
    written = 0
    while True:
        sketch = dynamo.get_or_none(SketchModel, sketch_key(sketch_id), META, consistent_read=True)
        if sketch is None:
            return written  # deleted meanwhile
        first = int(sketch.compacted_seq) + 1
        last = first + SEGMENT_SIZE - 1
        if last > int(sketch.seq):
            return written
        ops = OpModel.query(
            sketch_key(sketch_id),
            OpModel.sk.between(op_sort_key(first), op_sort_key(last)),
            consistent_read=True,  # the draw that filled the segment may have just landed
        )
        found = [op_dict(op) for op in ops]
        if len(found) != SEGMENT_SIZE:
            # The counter moved before every operation under it could be read: SQS delivers
            # the request again rather than a segment with a hole being filed.
            raise RuntimeError(f"segment {first}-{last} of {sketch_id} has {len(found)} operations")
        body = json.dumps(found, separators=(",", ":"))
        data = gzip.compress(body.encode(), compresslevel=6)
        key = _key(sketch, first, last)
        aws.s3().put_object(
            Bucket=get_settings().data_bucket,
            Key=key,
            Body=data,
            ContentType="application/json",
            ContentEncoding="gzip",
        )
        try:
            with dynamo.transaction(lambda: None, changed="compacted") as write:
                write.update(
                    sketch,
                    actions=[SketchModel.compacted_seq.set(last)],
                    condition=SketchModel.compacted_seq == first - 1,
                )
                write.save(
                    SegmentModel(
                        sketch_key(sketch_id),
                        segment_sort_key(first),
                        first_seq=first,
                        last_seq=last,
                        key=key,
                        bytes=len(data),
                    )
                )
        except Conflict:
            continue  # another compaction recorded it: read the sketch again
        written += 1
        logger.info("sketch segment compacted", sketch_id=sketch_id, first=first, last=last)


def op_dict(op: OpModel) -> dict[str, Any]:
    """An operation as every reader gets it (kumo.chat.schemas.OpOut's fields)."""
    return {
        "seq": int(op.seq),
        "author_id": op.author_id,
        "at": op.at,
        "t_ms": int(op.t_ms),
        "op": json.loads(op.op),
    }


def segment_out(segment: SegmentModel) -> SegmentOut:
    url: str = aws.s3().generate_presigned_url(
        "get_object",
        Params={"Bucket": get_settings().data_bucket, "Key": segment.key},
        ExpiresIn=LINK_SECONDS,
    )
    expires = datetime.now(UTC) + timedelta(seconds=LINK_SECONDS)
    return SegmentOut(
        first_seq=int(segment.first_seq),
        last_seq=int(segment.last_seq),
        url=url,
        bytes=int(segment.bytes),
        expires_at=expires.isoformat(timespec="seconds").replace("+00:00", "Z"),
    )


def read(segment: SegmentModel) -> list[dict[str, Any]]:
    answer = aws.s3().get_object(Bucket=get_settings().data_bucket, Key=segment.key)
    ops: list[dict[str, Any]] = json.loads(gzip.decompress(answer["Body"].read()))
    return ops


def remove(sketch: SketchModel) -> int:
    """Delete the sketch's segment files (its channel is being deleted); how many."""
    stored = of_sketch(sketch.sketch_id)
    for segment in stored:
        aws.s3().delete_object(Bucket=get_settings().data_bucket, Key=segment.key)
    return len(stored)
