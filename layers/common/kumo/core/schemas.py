"""Field types shared by every context's request and response models."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, WithJsonSchema

# What the OpenAPI document says an address is, and exactly what is accepted: spaces around
# it are allowed (and dropped), at most 254 characters in all.
EMAIL_PATTERN = r"^\s*([^@\s]{1,64}@[^@\s]+\.[^@\s]{2,})\s*$"
EMAIL_MAX_LENGTH = 254
_EMAIL = re.compile(EMAIL_PATTERN.removeprefix("^").removesuffix("$"))


def _normalise_email(value: str) -> str:
    # Addresses are compared lower-cased: two accounts must not differ only by case.
    match = _EMAIL.fullmatch(value) if len(value) <= EMAIL_MAX_LENGTH else None
    if match is None:
        raise ValueError("must be a valid e-mail address")
    return match.group(1).lower()


Email = Annotated[
    str,
    AfterValidator(_normalise_email),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": EMAIL_PATTERN,
            "maxLength": EMAIL_MAX_LENGTH,
            "description": "An e-mail address, compared lower-cased.",
        }
    ),
]
DISPLAY_NAME_MAX_LENGTH = 80


def _display_name(value: str) -> str:
    # Judged as sent, then stored without the spaces around it: what the document says.
    if len(value) > DISPLAY_NAME_MAX_LENGTH:
        raise ValueError(f"must be at most {DISPLAY_NAME_MAX_LENGTH} characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


DisplayName = Annotated[
    str,
    AfterValidator(_display_name),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": DISPLAY_NAME_MAX_LENGTH,
            # Something besides spaces; the spaces around it are dropped.
            "pattern": "\\S",
        }
    ),
]
Token = Annotated[str, StringConstraints(min_length=16, max_length=512)]


class StrictModel(BaseModel):
    """Request bodies reject unknown fields (a typo should fail, not be ignored) and take
    JSON's types as the OpenAPI document states them: no `false` for an integer, no `0` or
    `"yes"` for a boolean, no `"5"` for a number (ADR 0023). An int is still a valid float."""

    model_config = ConfigDict(extra="forbid", strict=True)
