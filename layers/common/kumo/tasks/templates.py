"""E-mail templates: which exist, which params each takes, and rendering them with Jinja2.

A template is three files in the mail/ folder next to this module: <name>.subject.txt,
<name>.txt and <name>.html, the last extending _layout.html. TEMPLATES declares the params of
each one; check_params holds a call to that declaration without rendering, so a caller learns
of a mistake when it enqueues, not when the mailer runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import jinja2

MAIL_DIR = Path(__file__).with_name("mail")
# Params are stored with the task until it is sent; this bounds the item and the mail.
MAX_PARAMS_BYTES = 16 * 1024
MAX_SUBJECT_CHARS = 200

ParamKind = Literal["scalar", "url", "date", "datetime", "rows", "strings"]
"""How a param is checked: scalar is any str, int, float or bool; url an absolute http(s)
address; date and datetime ISO 8601 strings; rows a non-empty list of {label, value} objects;
strings a list of strings."""


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """The params one template takes; a param outside required and optional is refused."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()
    # Params needing more than "any scalar"; see ParamKind.
    kinds: Mapping[str, ParamKind] = field(default_factory=dict)
    # Params limited to fixed values, because the templates branch or look up on them.
    choices: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def params(self) -> frozenset[str]:
        return self.required | self.optional


_ONE_TIME_LINK = TemplateSpec(
    required=frozenset({"display_name", "link", "token"}),
    kinds={"link": "url"},
)

TEMPLATES: dict[str, TemplateSpec] = {
    "verify_email": _ONE_TIME_LINK,
    "password_reset": _ONE_TIME_LINK,
    "org_invitation": TemplateSpec(
        required=frozenset({"inviter", "org_name", "role", "link", "token"}),
        kinds={"link": "url"},
    ),
    "alert_notification": TemplateSpec(
        required=frozenset(
            {
                "display_name",
                "device_name",
                "metric",
                "value",
                "comparison",
                "threshold",
                "severity",
                "triggered_at",
                "link",
            }
        ),
        optional=frozenset({"org_name"}),
        kinds={"link": "url", "triggered_at": "datetime"},
        choices={"severity": frozenset({"info", "warning", "critical"})},
    ),
    "weekly_report": TemplateSpec(
        required=frozenset({"display_name", "period_start", "period_end", "summary", "link"}),
        optional=frozenset({"highlights"}),
        kinds={
            "link": "url",
            "period_start": "date",
            "period_end": "date",
            "summary": "rows",
            "highlights": "strings",
        },
    ),
}


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str


class TemplateError(ValueError):
    """A template name or params the templates cannot take; the message is meant for API users."""

    def __init__(self, message: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        # One {"field", "message"} per problem, the shape ValidationFailed answers with.
        self.errors: list[dict[str, str]] = errors or []


def check_params(name: str, params: Mapping[str, object]) -> None:
    """Raise TemplateError unless `name` is a template and `params` exactly what it takes."""
    spec = _spec(name)
    if not isinstance(params, Mapping):
        raise TemplateError(
            "The params must be an object.",
            errors=[{"field": "params", "message": "not an object"}],
        )
    problems: list[tuple[str, str]] = []
    names = [key for key in params if isinstance(key, str)]
    if len(names) != len(params):
        problems.append(("params", "has names that are not strings"))
    for key in sorted(spec.required - set(names)):
        problems.append((key, "is missing"))
    unknown = sorted(set(names) - spec.params)
    for key in unknown:
        problems.append((key, "is not a param of this template"))
    for key in sorted(set(names) & spec.params):
        problems.extend(_value_problems(spec, key, params[key]))
    problems.extend(_period_problems(spec, params))
    if problems:
        message = "; ".join(f"{where} {what}" for where, what in problems) + "."
        if unknown:
            message += f" It takes {', '.join(sorted(spec.params))}."
        raise TemplateError(
            f"Invalid params for e-mail template {name!r}: {message}",
            errors=[{"field": where, "message": what} for where, what in problems],
        )
    # Measured as stored: enqueue_email keeps json.dumps(params) with the task.
    size = len(json.dumps(dict(params)))
    if size > MAX_PARAMS_BYTES:
        raise TemplateError(
            f"The params of e-mail template {name!r} take {size} bytes as JSON; "
            f"the limit is {MAX_PARAMS_BYTES} bytes (16 KiB).",
            errors=[{"field": "params", "message": f"exceeds {MAX_PARAMS_BYTES} bytes as JSON"}],
        )


def render(name: str, params: Mapping[str, object]) -> RenderedMail:
    """The subject (one line), text part and HTML part of template `name` filled with `params`."""
    check_params(name, params)
    spec = TEMPLATES[name]
    # Absent optional params are None, so templates test them with a plain `if` while
    # StrictUndefined still fails on any name a template uses without TEMPLATES declaring it.
    context: dict[str, object] = dict.fromkeys(spec.optional) | dict(params)
    environment = _environment()
    subject = _one_line(environment.get_template(f"{name}.subject.txt").render(context))
    text = environment.get_template(f"{name}.txt").render(context)
    # The layout titles the page with the subject; no template declares a param of that name.
    html = environment.get_template(f"{name}.html").render(context | {"subject": subject})
    return RenderedMail(subject=subject, text=text, html=html)


@cache
def _environment() -> jinja2.Environment:
    # Imported here: most functions that import kumo.tasks only enqueue, and a cold start
    # should pay for Jinja2 only in the function that renders.
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(MAIL_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        # The files cannot change while a Lambda runs; this spares a stat per render.
        auto_reload=False,
    )


def _spec(name: str) -> TemplateSpec:
    try:
        return TEMPLATES[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(TEMPLATES))
        raise TemplateError(
            f"Unknown e-mail template {name!r}; the known templates are {known}.",
            errors=[{"field": "template", "message": f"must be one of {known}"}],
        ) from None


def _one_line(subject: str) -> str:
    # A newline in a param must not reach the Subject header: collapse every run of whitespace.
    line = " ".join(subject.split())
    if len(line) > MAX_SUBJECT_CHARS:
        line = line[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
    return line


def _is_scalar(value: object) -> bool:
    if isinstance(value, float):
        # NaN and infinities are not JSON, so they would not survive storage.
        return math.isfinite(value)
    return isinstance(value, str | int | bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and _is_scalar(value)


def _value_problems(spec: TemplateSpec, key: str, value: object) -> list[tuple[str, str]]:
    kind = spec.kinds.get(key, "scalar")
    if kind == "rows":
        return _rows_problems(key, value)
    if kind == "strings":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return [(key, "must be a list of strings")]
        return []
    if not _is_scalar(value):
        return [(key, "must be a string, a number or a boolean")]
    allowed = spec.choices.get(key)
    if allowed is not None and value not in allowed:
        return [(key, f"must be one of {', '.join(sorted(allowed))}")]
    if kind == "url" and not _is_web_url(value):
        return [(key, "must be an absolute http:// or https:// URL")]
    if kind == "date" and _as_date(value) is None:
        return [(key, "must be an ISO 8601 date such as 2026-05-04")]
    if kind == "datetime" and _as_datetime(value) is None:
        return [(key, "must be an ISO 8601 time such as 2026-05-04T13:45:00Z")]
    return []


def _rows_problems(key: str, value: object) -> list[tuple[str, str]]:
    shape = "must be a non-empty list of {label, value} objects"
    if not isinstance(value, list) or not value:
        return [(key, shape)]
    problems: list[tuple[str, str]] = []
    for index, row in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(row, dict) or set(row) != {"label", "value"}:
            problems.append((where, "must be an object with exactly the keys label and value"))
            continue
        if not isinstance(row["label"], str):
            problems.append((f"{where}.label", "must be a string"))
        if not (isinstance(row["value"], str) or _is_number(row["value"])):
            problems.append((f"{where}.value", "must be a string or a number"))
    return problems


def _period_problems(spec: TemplateSpec, params: Mapping[str, object]) -> list[tuple[str, str]]:
    if spec.kinds.get("period_end") != "date":
        return []
    # Compared only when both are dates: a malformed one is reported by _value_problems.
    start, end = _as_date(params.get("period_start")), _as_date(params.get("period_end"))
    if start is not None and end is not None and end < start:
        return [("period_end", "must not be before period_start")]
    return []


def _is_web_url(value: object) -> bool:
    # Only web addresses: a javascript: or data: link in a mail is an attack, not a link.
    if not isinstance(value, str) or any(char.isspace() or ord(char) < 32 for char in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _as_date(value: object) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _as_datetime(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
