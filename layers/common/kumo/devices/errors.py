"""Devices' own problem types."""

from __future__ import annotations

from kumo.core.errors import Conflict


class DeviceLimitReached(Conflict):
    slug, title = "device-limit-reached", "Device limit reached"


class CommandExpired(Conflict):
    slug, title = "command-expired", "Command expired"


class CommandCompleted(Conflict):
    slug, title = "command-completed", "Command already completed"
