"""Field types shared by every context's request and response models."""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any, ClassVar, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# White space as the OpenAPI document's regular expressions (ECMA-262) mean `\s`. Python's
# `\s` and str.strip() differ from it (\x1c-\x1f, \x85, \ufeff), so the validators below
# use this class, and the document spells it out, to agree on every character.
SPACES = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
SPACE_CHARACTERS = (
    "\t\n\v\f\r \u00a0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)

# What the document says an address is, and exactly what is accepted: no white space or
# control character inside, white space around it allowed (and dropped), 254 characters in all.
_IN_ADDRESS = rf"[^@{SPACES}\x00-\x1f\x7f]"
EMAIL_PATTERN = (
    rf"^[{SPACES}]*({_IN_ADDRESS}{{1,64}}@{_IN_ADDRESS}+\.{_IN_ADDRESS}{{2,}})[{SPACES}]*$"
)
EMAIL_MAX_LENGTH = 254
_EMAIL = re.compile(EMAIL_PATTERN)


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
    # Judged as sent, then stored without the white space around it: what the document says.
    if len(value) > DISPLAY_NAME_MAX_LENGTH:
        raise ValueError(f"must be at most {DISPLAY_NAME_MAX_LENGTH} characters")
    stripped = value.strip(SPACE_CHARACTERS)
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


DisplayName = Annotated[
    str,
    AfterValidator(_display_name),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": DISPLAY_NAME_MAX_LENGTH,
            # Something besides white space, which is dropped around it.
            "pattern": rf"[^{SPACES}]",
        }
    ),
]
Token = Annotated[str, StringConstraints(min_length=16, max_length=512)]


class StrictModel(BaseModel):
    """Request bodies reject unknown fields (a typo should fail, not be ignored) and take
    JSON's types as the OpenAPI document states them: no `false` for an integer, no `0` or
    `"yes"` for a boolean, no `"5"` for a number (ADR 0023). An int is still a valid float,
    and a whole number written with a fraction (`5.0`) a valid integer, as JSON Schema has it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    # Fields that may be left out but whose null means nothing (a PATCH of a required value):
    # the document gives them no null, and the service refuses one with the field's name.
    not_null: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = super().__get_pydantic_json_schema__(core_schema, handler)
        properties = handler.resolve_ref_schema(json_schema).get("properties", {})
        for name in cls.not_null:
            field = properties[name]
            if field.get("default", ...) is None:
                del field["default"]
            branches = [b for b in field.pop("anyOf", []) if b != {"type": "null"}]
            if len(branches) == 1:
                field |= branches[0]
            elif branches:
                field["anyOf"] = branches
        return json_schema

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        whole = {
            key: int(value)
            for key, value in data.items()
            if isinstance(value, float)
            and value.is_integer()
            and abs(value) <= _EXACT_INTEGERS
            and key in _integer_fields(cls)
        }
        return {**data, **whole} if whole else data


# Floats hold every integer up to 2**53 exactly; past it `5.0` may not be what was written.
_EXACT_INTEGERS = 2**53


@cache
def _integer_fields(model: type[BaseModel]) -> frozenset[str]:
    """The names (and aliases) a model's integer fields are sent under."""
    return frozenset(
        name
        for field_name, field in model.model_fields.items()
        if _wants_integer(field.annotation)
        for name in (field_name, field.alias)
        if name
    )


def _wants_integer(annotation: Any) -> bool:
    """Whether a field of this type takes an integer but not a float (int | None, int | str)."""
    members = {annotation}
    while any(get_origin(member) is not None for member in members):
        members = {
            inner
            for member in members
            for inner in (get_args(member) if get_origin(member) is not None else (member,))
        }
    return int in members and float not in members
