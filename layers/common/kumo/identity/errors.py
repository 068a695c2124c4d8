"""Identity's own problem types."""

from __future__ import annotations

from kumo.core.errors import BadRequest, Forbidden


class InvalidToken(BadRequest):
    slug, title = "invalid-token", "Invalid or expired token"


class EmailNotVerified(Forbidden):
    slug, title = "email-not-verified", "E-mail not verified"


class AccountDisabled(Forbidden):
    slug, title = "account-disabled", "Account disabled"
