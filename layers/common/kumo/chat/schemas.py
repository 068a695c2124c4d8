"""Request and response bodies of /api/v1/chat, and the WebSocket `send_message` frame."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from kumo.core.schemas import StrictModel

Visibility = Literal["public", "private"]
Id = Annotated[str, StringConstraints(min_length=26, max_length=26)]
MAX_TEXT = 4000
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


class MessageOut(BaseModel):
    id: str
    channel_id: str
    seq: int
    author_id: str
    text: str
    image: ImageOut | None = None
    client_id: str | None = None
    created_at: str
    edited_at: str | None = None
    deleted: bool = False
