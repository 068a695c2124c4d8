"""The live stream's own problem types."""

from __future__ import annotations

from kumo.core.errors import Conflict


class SubscriptionLimitReached(Conflict):
    slug, title = "subscription-limit-reached", "Subscription limit reached"
