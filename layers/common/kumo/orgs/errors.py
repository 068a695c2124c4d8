"""Orgs' own problem types: stable slugs a client can act on without reading the detail."""

from __future__ import annotations

from kumo.core.errors import Conflict


class OrgLimitReached(Conflict):
    slug, title = "org-limit-reached", "Organization limit reached"


class LastOwner(Conflict):
    slug, title = "last-owner", "An organization needs an owner"


class AlreadyMember(Conflict):
    slug, title = "already-member", "Already a member"
