"""Field types shared by every context's request and response models."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def _normalise_email(value: str) -> str:
    # Addresses are compared lower-cased: two accounts must not differ only by case.
    value = value.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError("must be a valid e-mail address")
    return value


Email = Annotated[str, AfterValidator(_normalise_email)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
Token = Annotated[str, StringConstraints(min_length=16, max_length=512)]


class StrictModel(BaseModel):
    """Request bodies reject unknown fields (a typo should fail, not be ignored) and take
    JSON's types as the OpenAPI document states them: no `false` for an integer, no `0` or
    `"yes"` for a boolean, no `"5"` for a number (ADR 0023). An int is still a valid float."""

    model_config = ConfigDict(extra="forbid", strict=True)
