"""Request and response bodies of /api/v1/chat, and the WebSocket `send_message` frame."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from kumo.core.schemas import StrictModel

Visibility = Literal["public", "private"]
Id = Annotated[str, StringConstraints(min_length=26, max_length=26)]
MAX_TEXT = 4000
MAX_MENTIONS = 20
# Lower-case letters, digits, '-' and '_', as chat tools name channels: easy to type and to
# mention, the same in every script.
ChannelName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Description = Annotated[str, StringConstraints(max_length=500)]
ChannelPassword = Annotated[str, StringConstraints(min_length=4, max_length=128)]
# What a client calls a send, so a retry of it is stored once.
ClientId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,64}$")]
# Trimmed of white space around it by the service, which refuses what is left empty
# (unless the message carries an image).
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]


class CreateChannelRequest(StrictModel):
    org_id: Id
    name: ChannelName
    description: Description = ""
    visibility: Visibility = "public"
    password: ChannelPassword | None = Field(
        default=None, description="Asked when joining; stored as an argon2id hash."
    )


class UpdateChannelRequest(StrictModel):
    """Only the fields sent change; `password: null` removes the password."""

    not_null = frozenset({"name", "description"})

    name: ChannelName | None = None
    description: Description | None = None
    password: ChannelPassword | None = None


class JoinRequest(StrictModel):
    password: ChannelPassword | None = None


class ChannelInviteRequest(StrictModel):
    user_id: Id


class PostMessageRequest(StrictModel):
    text: Text = Field(
        default="", description="Trimmed; may be empty only when the message carries an image."
    )
    media_id: Id | None = Field(
        default=None, description="A ready file of the channel's org, purpose `attachment`."
    )
    sketch_id: Id | None = Field(
        default=None,
        description="A sketch of the channel: the message shows it as it is when sent.",
    )
    mentions: list[Id] = Field(
        default_factory=list,
        max_length=MAX_MENTIONS,
        description="Members of the channel the message names; each is told on their own channel.",
    )
    client_id: ClientId | None = Field(
        default=None, description="The same id again answers the message stored the first time."
    )


class EditMessageRequest(StrictModel):
    text: Text


class ReadRequest(StrictModel):
    seq: int = Field(ge=0, description="The newest message read.")


class SendMessageFrame(PostMessageRequest):
    """`{"action": "send_message", "channel_id": ..., "text": ..., "client_id": ...}`."""

    action: Literal["send_message"]
    channel_id: Id
    id: str | None = Field(default=None, max_length=64)


class PresenceFrame(StrictModel):
    """`{"action": "presence", "status": "online"|"away"|"offline"}`: a heartbeat, every 15 to
    20 seconds, and at once when what the client shows changes."""

    action: Literal["presence"]
    status: Literal["online", "away", "offline"]
    id: str | None = Field(default=None, max_length=64)


class TypingFrame(StrictModel):
    """`{"action": "typing", "channel_id": ...}`: passed on to the channel, never stored."""

    action: Literal["typing"]
    channel_id: Id
    id: str | None = Field(default=None, max_length=64)


class PresenceOut(BaseModel):
    user_id: str
    status: Literal["online", "away", "offline"]
    seen_at: str | None = Field(description="The user's last heartbeat, if any is kept.")
    until: str | None = Field(description="When the status runs out without a heartbeat.")


class ChannelOut(BaseModel):
    id: str
    org_id: str
    name: str
    description: str
    visibility: Visibility
    has_password: bool
    created_by: str
    created_at: str
    updated_at: str
    last_seq: int
    member_count: int
    joined: bool
    # For members: messages after their read marker.
    unread: int | None = None


class ChannelMemberOut(BaseModel):
    user_id: str
    joined_at: str
    last_read_seq: int


class ImageOut(BaseModel):
    media_id: str
    content_type: str
    width: int | None
    height: int | None
    original: str
    thumbnails: dict[str, str]
    expires_at: str


class SketchRefOut(BaseModel):
    """A sketch as a message shows it: its state after operation `seq`."""

    id: str
    title: str
    seq: int


class MessageOut(BaseModel):
    id: str
    channel_id: str
    seq: int
    author_id: str
    text: str
    image: ImageOut | None = None
    sketch: SketchRefOut | None = None
    mentions: list[str] = Field(default_factory=list)
    client_id: str | None = None
    created_at: str
    edited_at: str | None = None
    deleted: bool = False


# --- sketches ---------------------------------------------------------------------------------

MAX_SIDE = 8192
MAX_POINTS = 1000
MAX_TARGETS = 500
Colour = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
Coordinate = Annotated[float, Field(ge=0, le=MAX_SIDE, allow_inf_nan=False)]
# `[x, y]`: a JSON array (a tuple is no JSON type, and the strict models take none).
Point = Annotated[list[Coordinate], Field(min_length=2, max_length=2)]
SketchTitle = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]


class StrokeOp(StrictModel):
    """A line drawn at pen-up: its points in the canvas's units, `[x, y]` each."""

    kind: Literal["stroke"]
    tool: Literal["pen", "marker", "highlighter"] = "pen"
    color: Colour = "#000000"
    width: float = Field(default=2.0, ge=0.5, le=64, allow_inf_nan=False)
    points: list[Point] = Field(min_length=1, max_length=MAX_POINTS)


class EraseOp(StrictModel):
    """Erase strokes (by their sequence numbers): a tombstone, so the strokes stay replayable;
    undoing a stroke is erasing it."""

    kind: Literal["erase"]
    strokes: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=MAX_TARGETS)


class RestoreOp(StrictModel):
    """Bring erased strokes back (undoing an erase)."""

    kind: Literal["restore"]
    strokes: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=MAX_TARGETS)


SketchOp = Annotated[StrokeOp | EraseOp | RestoreOp, Field(discriminator="kind")]


class DrawFrame(StrictModel):
    """`{"action": "draw", "sketch_id": ..., "op": {...}, "client_id": ...}` on the socket."""

    action: Literal["draw"]
    sketch_id: Id
    op: SketchOp
    client_id: ClientId | None = None
    id: str | None = Field(default=None, max_length=64)


class CreateSketchRequest(StrictModel):
    title: SketchTitle
    width: int = Field(default=1920, ge=16, le=MAX_SIDE)
    height: int = Field(default=1080, ge=16, le=MAX_SIDE)


class SketchOut(BaseModel):
    id: str
    channel_id: str
    org_id: str
    title: str
    width: int
    height: int
    created_by: str
    created_at: str
    last_seq: int


class OpOut(BaseModel):
    seq: int
    author_id: str
    at: str
    t_ms: int = Field(description="Milliseconds since the sketch was created: the replay clock.")
    op: SketchOp


class SegmentOut(BaseModel):
    first_seq: int
    last_seq: int
    url: str = Field(description="Gzipped JSON (a list of operations as in `tail`), 5 minutes.")
    bytes: int
    expires_at: str


class SketchLoadOut(SketchOut):
    """A sketch to draw or replay: its compacted segments, then the operations after them."""

    segments: list[SegmentOut]
    tail: list[OpOut]
    tail_next_seq: int | None = Field(
        default=None, description="More operations follow: read .../strokes?after_seq= from here."
    )
