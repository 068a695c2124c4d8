"""E-mail templates: subject, text part and HTML part, with parameters escaped in HTML."""

from __future__ import annotations

import html
from dataclasses import dataclass
from string import Template


@dataclass(frozen=True, slots=True)
class EmailTemplate:
    subject: str
    text: str
    html: str
    params: frozenset[str]


TEMPLATES: dict[str, EmailTemplate] = {
    "verify_email": EmailTemplate(
        subject="Confirm your Kumo e-mail address",
        text=(
            "Hello $display_name,\n\nConfirm your address by opening this link:\n$link\n\n"
            "Or send this code to POST /api/v1/auth/verify-email: $token\n\n"
            "The link works once and expires in 24 hours."
        ),
        html=(
            '<p>Hello $display_name,</p><p><a href="$link">Confirm your address</a>.</p>'
            "<p>Code: <code>$token</code></p><p>The link works once and expires in 24 hours.</p>"
        ),
        params=frozenset({"display_name", "link", "token"}),
    ),
    "password_reset": EmailTemplate(
        subject="Reset your Kumo password",
        text=(
            "Hello $display_name,\n\nSomeone asked to reset your password. If it was you:\n"
            "$link\n\nCode: $token\n\nThe link works once and expires in 1 hour. "
            "If it was not you, ignore this mail."
        ),
        html=(
            '<p>Hello $display_name,</p><p><a href="$link">Reset your password</a>.</p>'
            "<p>Code: <code>$token</code></p><p>The link works once and expires in 1 hour. "
            "If it was not you, ignore this mail.</p>"
        ),
        params=frozenset({"display_name", "link", "token"}),
    ),
    "org_invitation": EmailTemplate(
        subject="$inviter invited you to $org_name on Kumo",
        text=(
            "$inviter invited you to join $org_name as $role.\n\nAccept here:\n$link\n\n"
            "Code: $token\n\nThe invitation expires in 7 days."
        ),
        html=(
            "<p>$inviter invited you to join <b>$org_name</b> as $role.</p>"
            '<p><a href="$link">Accept the invitation</a></p><p>Code: <code>$token</code></p>'
            "<p>The invitation expires in 7 days.</p>"
        ),
        params=frozenset({"inviter", "org_name", "role", "link", "token"}),
    ),
}


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def render(name: str, params: dict[str, str]) -> RenderedEmail:
    template = TEMPLATES[name]
    missing = template.params - params.keys()
    if missing:
        raise KeyError(f"template {name} needs {sorted(missing)}")
    escaped = {key: html.escape(value) for key, value in params.items()}
    return RenderedEmail(
        subject=Template(template.subject).substitute(params),
        text=Template(template.text).substitute(params),
        html=Template(template.html).substitute(escaped),
    )
