"""What WebSocket clients send. Server messages are plain dicts built in kumo.realtime.fanout
and kumo.realtime.service; the README documents both directions."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from kumo.core.schemas import StrictModel

Channel = Literal["device", "alerts", "status", "chat", "sketch", "user"]
Id = Field(default=None, min_length=26, max_length=26, pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")


# The id each channel is named by; the user's own channel needs none.
_NEEDS = {
    "device": "device_id",
    "chat": "channel_id",
    "sketch": "sketch_id",
    "alerts": "org_id",
    "status": "org_id",
}


class SubscriptionMessage(StrictModel):
    """`{"action": "subscribe"|"unsubscribe", "channel": "device", "device_id": ...}`,
    `{"action": ..., "channel": "alerts"|"status", "org_id": ...}`,
    `{"action": ..., "channel": "chat", "channel_id": ...}` (a chat channel joined),
    `{"action": ..., "channel": "sketch", "sketch_id": ...}` (a sketch of one) or
    `{"action": ..., "channel": "user"}` (the caller's own); `id` is echoed back."""

    action: Literal["subscribe", "unsubscribe"]
    channel: Channel
    device_id: str | None = Id
    org_id: str | None = Id
    channel_id: str | None = Id
    sketch_id: str | None = Id
    id: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _target(self) -> Self:
        wanted = _NEEDS.get(self.channel)
        if wanted is not None and not getattr(self, wanted):
            raise ValueError(f"the {self.channel} channel needs {wanted}")
        return self


class PingMessage(StrictModel):
    action: Literal["ping"]
    id: str | None = Field(default=None, max_length=64)
