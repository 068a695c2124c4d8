"""What WebSocket clients send. Server messages are plain dicts built in kumo.realtime.fanout
and kumo.realtime.service; the README documents both directions."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from kumo.core.schemas import StrictModel

Channel = Literal["device", "alerts", "status"]
Id = Field(default=None, min_length=26, max_length=26, pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")


class SubscriptionMessage(StrictModel):
    """`{"action": "subscribe"|"unsubscribe", "channel": "device", "device_id": ...}` or
    `{"action": ..., "channel": "alerts"|"status", "org_id": ...}`; `id` is echoed back."""

    action: Literal["subscribe", "unsubscribe"]
    channel: Channel
    device_id: str | None = Id
    org_id: str | None = Id
    id: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _target(self) -> Self:
        if self.channel == "device" and not self.device_id:
            raise ValueError("the device channel needs device_id")
        if self.channel != "device" and not self.org_id:
            raise ValueError(f"the {self.channel} channel needs org_id")
        return self


class PingMessage(StrictModel):
    action: Literal["ping"]
    id: str | None = Field(default=None, max_length=64)
