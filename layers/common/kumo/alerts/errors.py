"""Alerts' own problem types: stable slugs a client can act on without reading the detail."""

from __future__ import annotations

from kumo.core.errors import Conflict


class AlertRuleLimitReached(Conflict):
    slug, title = "alert-rule-limit-reached", "Alert rule limit reached"


class AlertNotOpen(Conflict):
    slug, title = "alert-not-open", "The alert is not open"
