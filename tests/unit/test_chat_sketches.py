"""Collaborative sketches under moto (kumo.chat.sketches, kumo.chat.segments and
kumo.chat.sketch_svg, ADR 29): who may create, list and draw; gapless operation numbers; what
a stroke, an erase and a restore may name; client ids that store a retry once; reading after a
sequence number; compaction into gzipped S3 segments and loading from them; which strokes an
SVG shows and that it carries nothing of anyone's text; messages that carry a sketch; deleting
a channel with its sketches; the `draw` and `subscribe` socket routes."""

from __future__ import annotations

import gzip
import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from kumo.chat import access, channels, messages, segments, sketch_svg, sketches
from kumo.chat.models import (
    SKETCH_PREFIX,
    OpModel,
    RateCounterModel,
    SketchModel,
    channel_key,
    op_sort_key,
    sketch_key,
)
from kumo.chat.schemas import (
    CreateSketchRequest,
    DrawFrame,
    PostMessageRequest,
    SketchOp,
    SketchRefOut,
)
from kumo.core import abuse_limits, clock, dynamo, rate_limit
from kumo.core import aws as kumo_aws
from kumo.core.config import get_settings
from kumo.core.errors import BadRequest, Forbidden, KumoError, NotFound, ValidationFailed
from kumo.core.principal import Principal
from kumo.core.rate_limit import Limit, RateLimited
from kumo.realtime import service
from kumo.realtime.schemas import SubscriptionMessage
from pydantic import TypeAdapter

from tests.support.aws import posted_to
from tests.support.factories import (
    Fleet,
    new_channel,
    new_fleet,
    principal_for,
    websocket_connection,
)
from tests.unit.conftest import T0, Clock, FakeContext, api_event, load_handler

PROBLEM = "urn:kumo:problem:"
SVG = "{http://www.w3.org/2000/svg}"
SIZE = segments.SEGMENT_SIZE
SKETCHES = "/api/v1/chat/channels/{channel_id}/sketches"


# --- fixtures and helpers -------------------------------------------------------------------


@dataclass(frozen=True)
class Room:
    """A public channel Alice created and Bob joined; Carol views the org but did not join, the
    stranger owns another org (user ids)."""

    org: Fleet
    channel_id: str
    alice: str
    bob: str
    carol: str
    stranger: str

    @property
    def org_id(self) -> str:
        return self.org.org_id


@pytest.fixture
def room(aws: None, fresh_management_client: None, at: Clock) -> Room:
    org = new_fleet("Acme", devices=0)
    alice, bob = (org.member("member")["subject_id"] for _ in range(2))
    carol = org.member("viewer")["subject_id"]
    channel_id = new_channel(org.org_id, alice)
    channels.join(user_id=bob, channel_id=channel_id, password=None)
    return Room(org, channel_id, alice, bob, carol, new_fleet("Other", devices=0).owner_id)


@pytest.fixture
def data_bucket(aws: None) -> str:
    """The data bucket, which the moto account does not build (segments are written there)."""
    name = get_settings().data_bucket
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_puts(aws: None) -> Iterator[list[str]]:
    """The keys of every object the code puts to S3 from now on."""
    keys: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        keys.append(str(params["Key"]))

    events = s3_events()
    events.register("provide-client-params.s3.PutObject", record)
    yield keys
    events.unregister("provide-client-params.s3.PutObject", record)


def s3_events() -> Any:
    """The hooks of the S3 client the code uses."""
    return kumo_aws.s3().meta.events


def new_sketch(
    room: Room, user_id: str | None = None, *, channel_id: str | None = None, **fields: Any
) -> SketchModel:
    request = CreateSketchRequest.model_validate({"title": "plan", **fields})
    return sketches.create_sketch(
        user_id=user_id or room.alice, channel_id=channel_id or room.channel_id, request=request
    )


def stroke(*points: tuple[float, float], **fields: Any) -> dict[str, Any]:
    return {"kind": "stroke", "points": [list(p) for p in points or [(10, 20), (30, 40)]], **fields}


def erase(*seqs: int) -> dict[str, Any]:
    return {"kind": "erase", "strokes": list(seqs)}


def restore(*seqs: int) -> dict[str, Any]:
    return {"kind": "restore", "strokes": list(seqs)}


def draw(
    user_id: str,
    sketch_id: str,
    op: dict[str, Any],
    *,
    client_id: str | None = None,
    connection_id: str | None = None,
) -> tuple[Any, bool]:
    frame: Any = DrawFrame.model_validate(
        {"action": "draw", "sketch_id": sketch_id, "op": op, "client_id": client_id}
    )
    return sketches.draw(user_id=user_id, frame=frame, connection_id=connection_id)


def drawn(user_id: str, sketch_id: str, op: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    out, replayed = draw(user_id, sketch_id, op or stroke(), **kwargs)
    assert not replayed
    return out


def seeded(sketch: SketchModel, author_id: str, count: int) -> None:
    """`count` more strokes stored as draws store them, in one batch: drawing them one by one
    costs moto a few seconds per hundred, and these tests are about what comes after."""
    stored = access.find_sketch(sketch.sketch_id)
    assert stored is not None
    first = int(stored.seq) + 1
    with OpModel.batch_write() as batch:
        for seq in range(first, first + count):
            op = DrawFrame.model_validate(
                {"action": "draw", "sketch_id": sketch.sketch_id, "op": stroke((seq % 97, 1))}
            ).op
            batch.save(
                OpModel(
                    sketch_key(sketch.sketch_id),
                    op_sort_key(seq),
                    seq=seq,
                    author_id=author_id,
                    at=clock.utc_iso(),
                    t_ms=seq,
                    op=json.dumps(op.model_dump(), separators=(",", ":")),
                )
            )
    stored.update(actions=[SketchModel.seq.set(first + count - 1)])


def current(sketch_id: str) -> SketchModel:
    found = access.find_sketch(sketch_id)
    assert found is not None
    return found


def every_op(room: Room, sketch_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
    """Every operation after `after_seq` as readers get them, page by page."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page, cursor = sketches.ops_after(
            user_id=room.bob,
            channel_id=room.channel_id,
            sketch_id=sketch_id,
            after_seq=after_seq,
            limit=100,
            cursor=cursor,
        )
        found.extend(sketches.op_out(op).model_dump() for op in page)
        if cursor is None:
            return found


def seqs_after(room: Room, sketch_id: str, after_seq: int, limit: int) -> list[list[int]]:
    """The sequence numbers of every page of ops_after, following its cursors to the end."""
    found, cursor = [], None
    while True:
        page, cursor = sketches.ops_after(
            user_id=room.bob,
            channel_id=room.channel_id,
            sketch_id=sketch_id,
            after_seq=after_seq,
            limit=limit,
            cursor=cursor,
        )
        found.append([int(op.seq) for op in page])
        if cursor is None:
            return found


def spent(limit: Limit, subject: str) -> int:
    """Units of `limit` spent by `subject` in the window that starts at T0."""
    counter = dynamo.get_or_none(
        RateCounterModel, rate_limit.counter_key(limit, subject), f"WINDOW#{int(T0)}"
    )
    return int(counter.hits) if counter is not None else 0


def field_of(error: KumoError) -> str:
    return str(error.extra["errors"][0]["field"])


def segment_objects(sketch: SketchModel) -> dict[str, bytes]:
    """The sketch's files in the data bucket, by key."""
    s3 = boto3.client("s3")
    bucket = get_settings().data_bucket
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"sketches/{sketch.org_id}/")
    keys = [entry["Key"] for entry in listed.get("Contents", [])]
    return {
        key: s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        for key in keys
        if sketch.sketch_id in key
    }


def chat_keys() -> set[tuple[str, str]]:
    """The key of every item of the chat table."""
    pages = (
        boto3.client("dynamodb").get_paginator("scan").paginate(TableName=get_settings().chat_table)
    )
    return {(i["pk"]["S"], i["sk"]["S"]) for page in pages for i in page["Items"]}


def compaction_requests() -> list[dict[str, Any]]:
    queue = get_settings().sketch_compaction_queue_url
    answer = kumo_aws.sqs().receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def on_sketch(user_id: str, sketch_id: str) -> str:
    """A new connection of the user, subscribed to the sketch with ws_subscribe's checks."""
    connection_id = websocket_connection(user_id)
    message: Any = SubscriptionMessage.model_validate(
        {"action": "subscribe", "channel": "sketch", "sketch_id": sketch_id}
    )
    service.subscribe(
        connection_id,
        Principal.from_context(principal_for(user_id)),
        message,
        device_org=lambda user_id, device_id: "",
        chat_org=access.channel_org,
        sketch_org=access.sketch_org,
    )
    return connection_id


def pushed_ops(connection_id: str) -> list[dict[str, Any]]:
    return [m for m in posted_to(connection_id) if m["event"] == "sketch_op"]


@pytest.fixture
def socket(
    load_event: Callable[[str], dict[str, Any]],
) -> Callable[..., list[dict[str, Any]]]:
    """Run a WebSocket route's function (`chat/ws_draw`, `realtime/ws_subscribe`) as API
    Gateway would, for `user_id` on `connection`; answers everything posted to it so far."""

    def send(function: str, connection: str, user_id: str, body: Any) -> list[dict[str, Any]]:
        event = load_event("realtime/subscribe")
        event["requestContext"]["routeKey"] = function.rsplit("ws_", 1)[-1]
        event["requestContext"]["connectionId"] = connection
        event["requestContext"]["authorizer"] = principal_for(user_id)
        event["body"] = json.dumps(body)
        handler = load_handler(function)
        assert handler.lambda_handler(event, FakeContext()) == {"statusCode": 200}
        return posted_to(connection)

    return send


# --- creating and listing -------------------------------------------------------------------


def test_create_sketch_by_a_member_starts_an_empty_canvas(room: Room) -> None:
    sketch = new_sketch(room, room.bob, title="  floor plan ", width=800, height=600)

    out = sketches.sketch_out(current(sketch.sketch_id))
    assert out.model_dump() == {
        "id": sketch.sketch_id,
        "channel_id": room.channel_id,
        "org_id": room.org_id,
        "title": "floor plan",
        "width": 800,
        "height": 600,
        "created_by": room.bob,
        "created_at": clock.utc_iso(T0),
        "last_seq": 0,
    }
    got = sketches.get_sketch(
        user_id=room.alice, channel_id=room.channel_id, sketch_id=sketch.sketch_id
    )
    assert sketches.sketch_out(got) == out


def test_create_sketch_in_another_orgs_channel_is_not_found(room: Room) -> None:
    with pytest.raises(NotFound):
        new_sketch(room, room.stranger)

    assert [k for k in chat_keys() if SKETCH_PREFIX in k[0] + k[1]] == []


def test_create_sketch_by_a_viewer_who_did_not_join_is_forbidden(room: Room) -> None:
    with pytest.raises(Forbidden):
        new_sketch(room, room.carol)

    listed, _ = sketches.list_sketches(
        user_id=room.alice, channel_id=room.channel_id, limit=None, cursor=None
    )
    assert listed == []


def test_list_sketches_pages_through_the_channels_sketches_oldest_first(room: Room) -> None:
    # Given three sketches in the channel and one in another channel of the org
    made = [new_sketch(room, title=f"s{n}").sketch_id for n in range(3)]
    new_sketch(room, channel_id=new_channel(room.org_id, room.alice))

    # When Bob lists them two at a time
    pages, cursor = [], None
    while True:
        found, cursor = sketches.list_sketches(
            user_id=room.bob, channel_id=room.channel_id, limit=2, cursor=cursor
        )
        pages.append([s.sketch_id for s in found])
        if cursor is None:
            break

    # Then he gets the channel's three, by id (ids grow with time), in pages of two
    ordered = sorted(made)
    assert pages == [ordered[:2], ordered[2:]]


def test_list_sketches_refuses_a_cursor_of_the_channels_message_list(room: Room) -> None:
    for n in range(3):
        messages.post_message(
            user_id=room.alice, channel_id=room.channel_id, request=PostMessageRequest(text=f"{n}")
        )
    _, _, cursor = messages.list_messages(
        user_id=room.alice, channel_id=room.channel_id, after_seq=None, limit=1, cursor=None
    )
    assert cursor is not None

    with pytest.raises(BadRequest) as refused:
        sketches.list_sketches(
            user_id=room.alice, channel_id=room.channel_id, limit=1, cursor=cursor
        )
    assert refused.value.extra["field"] == "cursor"


@pytest.mark.parametrize(("who", "refusal"), [("carol", Forbidden), ("stranger", NotFound)])
def test_list_sketches_is_for_members(room: Room, who: str, refusal: type[KumoError]) -> None:
    new_sketch(room)

    with pytest.raises(refusal):
        sketches.list_sketches(
            user_id=getattr(room, who), channel_id=room.channel_id, limit=None, cursor=None
        )


# --- drawing --------------------------------------------------------------------------------


def test_draw_numbers_operations_one_two_three_without_gaps(room: Room) -> None:
    sketch = new_sketch(room)

    outs = [
        drawn(room.alice, sketch.sketch_id),
        drawn(room.bob, sketch.sketch_id, erase(1)),
        drawn(room.alice, sketch.sketch_id, restore(1)),
    ]

    assert [(o.seq, o.author_id, o.op.kind) for o in outs] == [
        (1, room.alice, "stroke"),
        (2, room.bob, "erase"),
        (3, room.alice, "restore"),
    ]
    assert int(current(sketch.sketch_id).seq) == 3
    assert every_op(room, sketch.sketch_id) == [o.model_dump() for o in outs]


def test_draw_stores_points_to_a_tenth_and_times_from_the_sketchs_creation(
    room: Room, at: Clock
) -> None:
    sketch = new_sketch(room)
    at.at = T0 + 1.25

    out = drawn(room.alice, sketch.sketch_id, stroke((10.26, 20.04), (0, 7.5), color="#a1B2c3"))

    assert out.model_dump() == {
        "seq": 1,
        "author_id": room.alice,
        "at": clock.utc_iso(T0 + 1.25),
        "t_ms": 1250,
        "op": {
            "kind": "stroke",
            "tool": "pen",
            "color": "#a1B2c3",
            "width": 2.0,
            "points": [[10.3, 20.0], [0.0, 7.5]],
        },
    }


@pytest.mark.parametrize("point", [(101, 10), (10, 51), (100.01, 0)])
def test_draw_of_points_outside_the_canvas_is_refused_on_op_points(
    room: Room, point: tuple[float, float]
) -> None:
    sketch = new_sketch(room, width=100, height=50)

    with pytest.raises(ValidationFailed) as refused:
        draw(room.alice, sketch.sketch_id, stroke((0, 0), point))

    assert refused.value.status == 422
    assert field_of(refused.value) == "op.points"
    assert int(current(sketch.sketch_id).seq) == 0
    assert spent(abuse_limits.SKETCH_OP_PER_USER, room.alice) == 0


def test_draw_on_the_canvas_edge_is_stored(room: Room) -> None:
    sketch = new_sketch(room, width=100, height=50)

    out = drawn(room.alice, sketch.sketch_id, stroke((0, 0), (100, 50)))

    assert out.op.points == [[0.0, 0.0], [100.0, 50.0]]


@pytest.mark.parametrize("kind", [erase, restore])
def test_draw_naming_a_seq_past_the_newest_is_refused_on_op_strokes(
    room: Room, kind: Callable[..., dict[str, Any]]
) -> None:
    sketch = new_sketch(room)
    drawn(room.alice, sketch.sketch_id)

    with pytest.raises(ValidationFailed) as refused:
        draw(room.alice, sketch.sketch_id, kind(1, 2))

    assert refused.value.status == 422
    assert field_of(refused.value) == "op.strokes"
    assert int(current(sketch.sketch_id).seq) == 1


def test_draw_retried_with_its_client_id_is_stored_once_and_spends_no_allowance(
    room: Room,
) -> None:
    # Given a stroke drawn on a connection with a client id
    sketch = new_sketch(room)
    bobs = on_sketch(room.bob, sketch.sketch_id)
    connection = websocket_connection(room.alice)
    first, replayed = draw(
        room.alice, sketch.sketch_id, stroke(), client_id="c-1", connection_id=connection
    )
    assert not replayed

    # When it comes again (its answer was lost)
    again, replayed = draw(
        room.alice, sketch.sketch_id, stroke(), client_id="c-1", connection_id=connection
    )

    # Then it answers the first, stores nothing, pushes nothing more and spends nothing more
    assert replayed
    assert again == first
    assert int(current(sketch.sketch_id).seq) == 1
    assert len(pushed_ops(bobs)) == 1
    assert spent(abuse_limits.SKETCH_OP_PER_USER, room.alice) == 1
    assert spent(abuse_limits.SKETCH_OP_PER_CONNECTION, connection) == 1


def test_draw_client_ids_are_the_drawers_own(room: Room) -> None:
    sketch = new_sketch(room)
    drawn(room.alice, sketch.sketch_id, client_id="c-1")

    bobs, replayed = draw(room.bob, sketch.sketch_id, stroke(), client_id="c-1")

    assert not replayed
    assert (bobs.seq, bobs.author_id) == (2, room.bob)


@pytest.mark.parametrize(("who", "refusal"), [("carol", Forbidden), ("stranger", NotFound)])
def test_draw_is_for_members(room: Room, who: str, refusal: type[KumoError]) -> None:
    sketch = new_sketch(room)

    with pytest.raises(refusal):
        draw(getattr(room, who), sketch.sketch_id, stroke())

    assert int(current(sketch.sketch_id).seq) == 0


def test_draw_reaches_the_sketchs_viewers_only(room: Room) -> None:
    # Given Bob viewing the sketch, and Alice viewing another one
    sketch, other = new_sketch(room), new_sketch(room)
    bobs, alices = on_sketch(room.bob, sketch.sketch_id), on_sketch(room.alice, other.sketch_id)

    out = drawn(room.alice, sketch.sketch_id)

    assert pushed_ops(bobs) == [
        {"event": "sketch_op", "sketch_id": sketch.sketch_id, "op": out.model_dump()}
    ]
    assert posted_to(alices) == []


def test_draw_past_the_connections_allowance_is_429(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a connection allowance of two (the real one is 300 a minute)
    small = Limit(abuse_limits.SKETCH_OP_PER_CONNECTION.name, 2, 60, "test")
    monkeypatch.setattr(abuse_limits, "SKETCH_OP_PER_CONNECTION", small)
    sketch = new_sketch(room)
    connection = websocket_connection(room.alice)
    for _ in range(2):
        drawn(room.alice, sketch.sketch_id, connection_id=connection)

    with pytest.raises(RateLimited) as refused:
        draw(room.alice, sketch.sketch_id, stroke(), connection_id=connection)

    assert refused.value.status == 429
    assert spent(abuse_limits.SKETCH_OP_PER_USER, room.alice) == 2
    assert int(current(sketch.sketch_id).seq) == 2
    assert drawn(room.alice, sketch.sketch_id, connection_id=websocket_connection(room.alice))


# --- reading --------------------------------------------------------------------------------


def test_a_sketch_of_another_channel_named_in_the_route_is_not_found(room: Room) -> None:
    # Given a sketch in another channel Alice and Bob are both members of
    elsewhere = new_channel(room.org_id, room.alice)
    channels.join(user_id=room.bob, channel_id=elsewhere, password=None)
    sketch = new_sketch(room, channel_id=elsewhere)
    ids = {"user_id": room.bob, "channel_id": room.channel_id, "sketch_id": sketch.sketch_id}

    # Then every read that names this channel finds no such sketch
    with pytest.raises(NotFound):
        sketches.get_sketch(**ids)
    with pytest.raises(NotFound):
        sketches.load(**ids)
    with pytest.raises(NotFound):
        sketches.ops_after(**ids, after_seq=0, limit=None, cursor=None)


def test_ops_after_answers_the_operations_after_a_seq_oldest_first(room: Room) -> None:
    sketch = new_sketch(room)
    for _ in range(5):
        drawn(room.alice, sketch.sketch_id)

    assert seqs_after(room, sketch.sketch_id, after_seq=2, limit=2) == [[3, 4], [5]]
    assert seqs_after(room, sketch.sketch_id, after_seq=0, limit=100) == [[1, 2, 3, 4, 5]]
    assert seqs_after(room, sketch.sketch_id, after_seq=5, limit=2) == [[]]


# --- compaction -----------------------------------------------------------------------------


def test_the_draw_that_fills_a_segment_queues_its_compaction(room: Room) -> None:
    sketch = new_sketch(room)
    seeded(sketch, room.alice, SIZE - 2)
    drawn(room.alice, sketch.sketch_id)
    assert compaction_requests() == []

    drawn(room.alice, sketch.sketch_id)  # number SIZE
    drawn(room.alice, sketch.sketch_id)

    assert compaction_requests() == [{"sketch_id": sketch.sketch_id}]


@pytest.mark.usefixtures("data_bucket")
def test_compact_writes_each_full_segment_with_its_range(room: Room) -> None:
    sketch = new_sketch(room)
    seeded(sketch, room.alice, 2 * SIZE + 5)

    written = segments.compact(sketch.sketch_id)

    assert written == 2
    stored = segments.of_sketch(sketch.sketch_id)
    assert [(int(s.first_seq), int(s.last_seq)) for s in stored] == [
        (1, SIZE),
        (SIZE + 1, 2 * SIZE),
    ]
    assert int(current(sketch.sketch_id).compacted_seq) == 2 * SIZE
    assert sorted(segment_objects(sketch)) == [s.key for s in stored]


@pytest.mark.usefixtures("data_bucket")
def test_compact_segment_file_holds_exactly_its_operations_as_readers_get_them(
    room: Room,
) -> None:
    sketch = new_sketch(room)
    seeded(sketch, room.alice, 2 * SIZE + 5)

    segments.compact(sketch.sketch_id)

    ops = every_op(room, sketch.sketch_id)
    files = segment_objects(sketch)
    head = boto3.client("s3").head_object(Bucket=get_settings().data_bucket, Key=min(files))
    assert (head["ContentType"], head["ContentEncoding"]) == ("application/json", "gzip")
    stored = segments.of_sketch(sketch.sketch_id)
    contents = [json.loads(gzip.decompress(files[s.key])) for s in stored]
    assert contents == [ops[:SIZE], ops[SIZE : 2 * SIZE]]
    assert [int(s.bytes) for s in stored] == [len(files[s.key]) for s in stored]


@pytest.mark.usefixtures("data_bucket")
def test_compact_a_second_time_writes_nothing(room: Room, s3_puts: list[str]) -> None:
    sketch = new_sketch(room)
    seeded(sketch, room.alice, 2 * SIZE + 5)
    segments.compact(sketch.sketch_id)
    before = (segments.of_sketch(sketch.sketch_id), segment_objects(sketch), list(s3_puts))

    again = segments.compact(sketch.sketch_id)

    assert again == 0
    assert s3_puts == before[2]
    assert len(before[2]) == 2
    after = segments.of_sketch(sketch.sketch_id)
    assert [s.attribute_values for s in after] == [s.attribute_values for s in before[0]]
    assert segment_objects(sketch) == before[1]


@pytest.mark.usefixtures("data_bucket")
def test_compact_racing_another_records_each_segment_once(room: Room, s3_puts: list[str]) -> None:
    # Given a second compaction that runs in full while the first writes its first file
    sketch = new_sketch(room)
    seeded(sketch, room.alice, 2 * SIZE + 5)
    rival: list[int] = []

    def rival_runs(**_: Any) -> None:
        if not rival:
            rival.append(0)
            rival[0] = segments.compact(sketch.sketch_id)

    s3_events().register("before-call.s3.PutObject", rival_runs)
    try:
        # When the first compaction goes on
        first = segments.compact(sketch.sketch_id)
    finally:
        s3_events().unregister("before-call.s3.PutObject", rival_runs)

    # Then the rival recorded both segments, the first none, each segment is recorded once,
    # and the file both wrote holds the same operations
    assert (rival, first) == ([2], 0)
    stored = segments.of_sketch(sketch.sketch_id)
    assert [(int(s.first_seq), int(s.last_seq)) for s in stored] == [
        (1, SIZE),
        (SIZE + 1, 2 * SIZE),
    ]
    assert int(current(sketch.sketch_id).compacted_seq) == 2 * SIZE
    ops = every_op(room, sketch.sketch_id)
    assert json.loads(gzip.decompress(segment_objects(sketch)[stored[0].key])) == ops[:SIZE]


@pytest.mark.usefixtures("data_bucket")
def test_compact_files_the_operation_that_filled_the_segment_though_reads_lag(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the draw that fills a segment just stored, and DynamoDB's eventually consistent
    # queries not showing it yet (moto's are always consistent; the consumer runs at once)
    sketch = new_sketch(room)
    seeded(sketch, room.alice, SIZE)
    expected = every_op(room, sketch.sketch_id)
    real_query = OpModel.query

    def lagging_query(*args: Any, **kwargs: Any) -> Iterator[OpModel]:
        for op in real_query(*args, **kwargs):
            if kwargs.get("consistent_read") or int(op.seq) != SIZE:
                yield op

    monkeypatch.setattr(OpModel, "query", lagging_query)

    # When the consumer compacts it
    segments.compact(sketch.sketch_id)

    # Then the file holds all of the segment's operations: the range it is recorded for is
    # never read from the table again, so one missed here would be missing from every replay
    [stored] = segments.of_sketch(sketch.sketch_id)
    filed = json.loads(gzip.decompress(segment_objects(sketch)[stored.key]))
    assert [op["seq"] for op in filed] == list(range(1, SIZE + 1)), (
        "kumo.chat.segments.compact read the segment's operations with an eventually "
        f"consistent query and filed {len(filed)} of {SIZE} as 1..{SIZE}"
    )
    assert filed == expected


@pytest.mark.usefixtures("data_bucket")
def test_compact_of_a_sketch_short_of_a_segment_writes_nothing(
    room: Room, s3_puts: list[str]
) -> None:
    sketch = new_sketch(room)
    seeded(sketch, room.alice, SIZE - 1)

    assert segments.compact(sketch.sketch_id) == 0
    assert segments.compact("0" * 26) == 0  # no such sketch (deleted meanwhile)
    assert s3_puts == []
    assert segments.of_sketch(sketch.sketch_id) == []


@pytest.mark.usefixtures("data_bucket")
def test_load_answers_links_to_the_segments_and_the_tail_after_them(room: Room) -> None:
    # Given 2 segments and 5 operations after them, compacted
    sketch = new_sketch(room, title="big one")
    seeded(sketch, room.alice, 2 * SIZE + 5)
    segments.compact(sketch.sketch_id)

    # When Bob loads it
    loaded = sketches.load(user_id=room.bob, channel_id=room.channel_id, sketch_id=sketch.sketch_id)

    # Then he gets the sketch, a link to each segment, and the last five operations
    assert (loaded.id, loaded.title, loaded.last_seq) == (sketch.sketch_id, "big one", 2 * SIZE + 5)
    assert [(s.first_seq, s.last_seq) for s in loaded.segments] == [
        (1, SIZE),
        (SIZE + 1, 2 * SIZE),
    ]
    files = segment_objects(sketch)
    for link, stored in zip(loaded.segments, segments.of_sketch(sketch.sketch_id), strict=True):
        assert stored.key in link.url and "Signature=" in link.url
        assert link.bytes == len(files[stored.key])
    ops = every_op(room, sketch.sketch_id)
    assert [op.model_dump() for op in loaded.tail] == ops[2 * SIZE :]
    assert [op.seq for op in loaded.tail] == list(range(2 * SIZE + 1, 2 * SIZE + 6))
    assert loaded.tail_next_seq is None


def test_load_of_a_sketch_never_compacted_answers_every_operation_as_its_tail(
    room: Room,
) -> None:
    sketch = new_sketch(room)
    outs = [drawn(room.alice, sketch.sketch_id) for _ in range(3)]

    loaded = sketches.load(user_id=room.bob, channel_id=room.channel_id, sketch_id=sketch.sketch_id)

    assert loaded.segments == []
    assert loaded.tail == outs
    assert loaded.tail_next_seq is None


def test_load_says_where_to_read_on_past_its_tail_limit(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sketches, "TAIL_LIMIT", 3)
    sketch = new_sketch(room)
    seeded(sketch, room.alice, 5)

    loaded = sketches.load(user_id=room.bob, channel_id=room.channel_id, sketch_id=sketch.sketch_id)

    assert ([op.seq for op in loaded.tail], loaded.tail_next_seq) == ([1, 2, 3], 3)


@pytest.mark.usefixtures("data_bucket")
def test_all_ops_reads_the_segments_then_the_tail(room: Room) -> None:
    sketch = new_sketch(room)
    seeded(sketch, room.alice, SIZE + 3)
    segments.compact(sketch.sketch_id)

    assert sketches.all_ops(current(sketch.sketch_id)) == every_op(room, sketch.sketch_id)


@pytest.mark.usefixtures("data_bucket")
def test_compaction_function_compacts_the_sketches_it_is_told_and_drops_nonsense(
    room: Room,
) -> None:
    sketch = new_sketch(room)
    seeded(sketch, room.alice, SIZE)
    event = {
        "Records": [
            {"messageId": "m-1", "body": json.dumps({"sketch_id": sketch.sketch_id})},
            {"messageId": "m-2", "body": "not json"},
            {"messageId": "m-3", "body": json.dumps({"no": "sketch"})},
        ]
    }

    answer = load_handler("chat/compact_sketches").lambda_handler(event, FakeContext())

    assert answer == {"batchItemFailures": []}
    assert [int(s.last_seq) for s in segments.of_sketch(sketch.sketch_id)] == [SIZE]


# --- what the SVG shows ---------------------------------------------------------------------


def as_stored(op: dict[str, Any]) -> dict[str, Any]:
    """The operation with its defaults filled in, as a draw stores it."""
    validated: Any = TypeAdapter(SketchOp).validate_python(op)
    stored: dict[str, Any] = validated.model_dump()
    return stored


def entries(*ops: dict[str, Any]) -> list[dict[str, Any]]:
    """Operations numbered 1, 2, … as readers get them."""
    return [{"seq": n, "op": as_stored(op)} for n, op in enumerate(ops, start=1)]


def test_visible_strokes_hides_an_erased_stroke() -> None:
    ops = entries(stroke((1, 1)), stroke((2, 2)), erase(1))

    assert sketch_svg.visible_strokes(ops) == [as_stored(stroke((2, 2)))]


def test_visible_strokes_shows_a_restored_stroke_again_in_its_place() -> None:
    ops = entries(stroke((1, 1)), stroke((2, 2)), erase(1, 2), restore(1), stroke((3, 3)))

    assert sketch_svg.visible_strokes(ops) == [as_stored(stroke((1, 1))), as_stored(stroke((3, 3)))]


def test_visible_strokes_ignores_a_restore_of_a_seq_never_drawn() -> None:
    # 2 is an erase, 9 was never drawn: restoring them shows nothing new
    ops = entries(stroke((1, 1)), erase(1), restore(2, 9))

    assert sketch_svg.visible_strokes(ops) == []


def canvas(width: int = 200, height: int = 100, title: str = "plan") -> SketchModel:
    return SketchModel(sketch_key("0" * 26), width=width, height=height, title=title)


def elements(svg: str) -> list[str]:
    """The tags of the picture's elements, inside its <svg> (parsed, so it is well formed)."""
    root = ElementTree.fromstring(svg)  # noqa: S314 - the code's own output, not a stranger's
    assert root.tag == f"{SVG}svg"
    return [child.tag.removeprefix(SVG) for child in root]


def test_render_draws_one_element_per_visible_stroke() -> None:
    ops = entries(
        stroke((1, 1), (2, 2)),
        stroke((3, 3), (4, 4), tool="highlighter"),
        stroke((5, 5), (6, 6)),
        erase(3),
    )

    svg = sketch_svg.render(canvas(), ops)

    assert elements(svg) == ["rect", "polyline", "polyline"]
    assert 'points="1,1 2,2"' in svg
    assert 'stroke-opacity="0.35"' in svg
    assert 'width="200" height="100" viewBox="0 0 200 100"' in svg


def test_render_draws_a_one_point_stroke_as_a_circle() -> None:
    svg = sketch_svg.render(canvas(), entries(stroke((12.5, 7), color="#ff0000", width=4)))

    assert elements(svg) == ["rect", "circle"]
    assert '<circle cx="12.5" cy="7" r="2" fill="#ff0000"' in svg


def test_render_carries_no_text_of_the_sketch() -> None:
    title = '<script>alert("x")</script>'

    svg = sketch_svg.render(canvas(title=title), entries(stroke((1, 1), (2, 2))))

    assert title not in svg and "script" not in svg and "alert" not in svg
    assert elements(svg) == ["rect", "polyline"]


def test_export_svg_function_answers_the_picture_without_the_title(
    room: Room, load_event: Callable[[str], dict[str, Any]]
) -> None:
    # Given a sketch titled with a script, two strokes and one of them erased
    sketch = new_sketch(room, title="<script>alert(1)</script>")
    drawn(room.alice, sketch.sketch_id, stroke((1, 1), (5, 5)))
    drawn(room.alice, sketch.sketch_id, stroke((9, 9)))
    drawn(room.bob, sketch.sketch_id, erase(1))
    path = f"{SKETCHES.format(channel_id=room.channel_id)}/{sketch.sketch_id}/svg"

    # When Bob exports it
    event = api_event(
        load_event,
        "GET",
        path,
        resource=f"{SKETCHES}/{{sketch_id}}/svg",
        path_parameters={"channel_id": room.channel_id, "sketch_id": sketch.sketch_id},
        principal=principal_for(room.bob),
    )
    answer = load_handler("chat/export_sketch_svg").lambda_handler(event, FakeContext())

    # Then it is an SVG of the one stroke left, that runs nothing and shows no title
    assert answer["statusCode"] == 200, answer["body"]
    headers = {k.lower(): v for k, [v] in answer["multiValueHeaders"].items()}
    assert headers["content-type"] == "image/svg+xml"
    assert "sandbox" in headers["content-security-policy"]
    assert elements(answer["body"]) == ["rect", "circle"]
    assert "script" not in answer["body"] and "alert" not in answer["body"]


# --- messages that carry a sketch -----------------------------------------------------------


def test_a_message_carrying_a_sketch_shows_it_as_it_was_when_sent(room: Room) -> None:
    # Given a sketch of two operations
    sketch = new_sketch(room, title="layout")
    drawn(room.alice, sketch.sketch_id)
    drawn(room.alice, sketch.sketch_id)

    # When Bob sends it, and Alice draws on
    out, _ = messages.post_message(
        user_id=room.bob,
        channel_id=room.channel_id,
        request=PostMessageRequest(text="", sketch_id=sketch.sketch_id),
    )
    drawn(room.alice, sketch.sketch_id)

    # Then the message shows the sketch at operation 2, when sent and when read
    expected = SketchRefOut(id=sketch.sketch_id, title="layout", seq=2)
    assert out.sketch == expected
    _, found, _ = messages.list_messages(
        user_id=room.alice, channel_id=room.channel_id, after_seq=0, limit=10, cursor=None
    )
    assert [messages.message_out(m, room.org_id).sketch for m in found] == [expected]


def test_a_message_carrying_a_sketch_of_another_channel_is_refused_on_sketch_id(
    room: Room,
) -> None:
    theirs = new_sketch(room, channel_id=new_channel(room.org_id, room.alice))

    with pytest.raises(ValidationFailed) as refused:
        messages.post_message(
            user_id=room.alice,
            channel_id=room.channel_id,
            request=PostMessageRequest(text="look", sketch_id=theirs.sketch_id),
        )

    assert refused.value.status == 422
    assert field_of(refused.value) == "sketch_id"
    channel = access.find(room.channel_id)
    assert channel is not None and int(channel.seq) == 0


# --- deleting the channel -------------------------------------------------------------------


@pytest.mark.usefixtures("data_bucket")
def test_deleting_a_channel_removes_its_sketches_and_their_files(room: Room) -> None:
    # Given a compacted sketch with a retried-send record, an empty sketch, and a sketch of
    # another channel
    sketch, empty = new_sketch(room), new_sketch(room)
    seeded(sketch, room.alice, SIZE)
    drawn(room.alice, sketch.sketch_id, client_id="c-1")
    segments.compact(sketch.sketch_id)
    assert len(segment_objects(sketch)) == 1
    kept = new_sketch(room, channel_id=new_channel(room.org_id, room.alice))
    seeded(kept, room.alice, SIZE)
    segments.compact(kept.sketch_id)

    # When Alice deletes the channel
    channels.delete_channel(user_id=room.alice, channel_id=room.channel_id)

    # Then nothing of its sketches is left, in the table or the bucket; the other stays
    gone = {sketch_key(sketch.sketch_id), sketch_key(empty.sketch_id), channel_key(room.channel_id)}
    assert [k for k in chat_keys() if k[0] in gone] == []
    assert segment_objects(sketch) == {}
    assert access.find_sketch(kept.sketch_id) is not None
    assert len(segment_objects(kept)) == 1
    with pytest.raises(NotFound):
        sketches.get_sketch(
            user_id=room.alice, channel_id=room.channel_id, sketch_id=sketch.sketch_id
        )


# --- the socket -----------------------------------------------------------------------------


def test_ws_draw_answers_drawn_and_viewers_get_the_operation(
    room: Room, socket: Callable[..., list[dict[str, Any]]]
) -> None:
    sketch = new_sketch(room)
    bobs = on_sketch(room.bob, sketch.sketch_id)
    alices = websocket_connection(room.alice)
    frame = {
        "action": "draw",
        "sketch_id": sketch.sketch_id,
        "op": stroke((1, 2), (3, 4), color="#123abc", width=3),
        "client_id": "c-1",
        "id": "d-1",
    }

    first = socket("chat/ws_draw", alices, room.alice, frame)
    again = socket("chat/ws_draw", alices, room.alice, {**frame, "id": "d-2"})

    op = {
        "seq": 1,
        "author_id": room.alice,
        "at": clock.utc_iso(T0),
        "t_ms": 0,
        "op": {
            "kind": "stroke",
            "tool": "pen",
            "color": "#123abc",
            "width": 3.0,
            "points": [[1.0, 2.0], [3.0, 4.0]],
        },
    }
    assert first == [{"event": "drawn", "id": "d-1", "replayed": False, "op": op}]
    assert again[1:] == [{"event": "drawn", "id": "d-2", "replayed": True, "op": op}]
    assert posted_to(bobs) == [{"event": "sketch_op", "sketch_id": sketch.sketch_id, "op": op}]


@pytest.mark.parametrize(
    ("op", "field"),
    [
        (stroke((0, 0), (500, 10)), "op.points"),
        (erase(7), "op.strokes"),
        (stroke(color="red"), "op.stroke.color"),
        ({"kind": "smudge"}, "op"),
    ],
)
def test_ws_draw_answers_a_422_problem_frame_for_a_bad_operation(
    room: Room, socket: Callable[..., list[dict[str, Any]]], op: dict[str, Any], field: str
) -> None:
    sketch = new_sketch(room, width=100, height=100)
    alices = websocket_connection(room.alice)

    [reply] = socket(
        "chat/ws_draw",
        alices,
        room.alice,
        {"action": "draw", "sketch_id": sketch.sketch_id, "op": op, "id": "bad-1"},
    )

    assert (reply["event"], reply["id"]) == ("error", "bad-1")
    assert (reply["problem"]["status"], reply["problem"]["type"]) == (
        422,
        f"{PROBLEM}validation-error",
    )
    assert [e["field"] for e in reply["problem"]["errors"]] == [field]
    assert int(current(sketch.sketch_id).seq) == 0


def test_ws_subscribe_to_a_sketch_needs_membership_of_its_channel(
    room: Room, socket: Callable[..., list[dict[str, Any]]]
) -> None:
    sketch = new_sketch(room)
    body = {"action": "subscribe", "channel": "sketch", "sketch_id": sketch.sketch_id, "id": "s"}
    bobs, carols, strangers = (
        websocket_connection(room.bob),
        websocket_connection(room.carol),
        websocket_connection(room.stranger),
    )

    mine = socket("realtime/ws_subscribe", bobs, room.bob, body)
    refusals = [
        socket("realtime/ws_subscribe", connection, user_id, body)
        for connection, user_id in ((carols, room.carol), (strangers, room.stranger))
    ]

    assert mine == [
        {
            "event": "subscribed",
            "channel": "sketch",
            "sketch_id": sketch.sketch_id,
            "org_id": room.org_id,
            "id": "s",
        }
    ]
    for [reply] in refusals:
        assert (reply["event"], reply["id"]) == ("error", "s")
        assert (reply["problem"]["status"], reply["problem"]["type"]) == (
            404,
            f"{PROBLEM}not-found",
        )
    drawn(room.alice, sketch.sketch_id)
    assert len(pushed_ops(bobs)) == 1
    assert pushed_ops(carols) == pushed_ops(strangers) == []
