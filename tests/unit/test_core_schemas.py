"""The shared request field types accept exactly what the OpenAPI document says they do
(kumo.core.schemas, ADR 0023): the fuzzer generates from the document's patterns, so a
validator that is stricter or looser than its pattern fails `make fuzz`."""

from __future__ import annotations

import re
from typing import Annotated, Any

import pytest
from kumo.core import schemas
from kumo.core.schemas import DisplayName, Email, StrictModel
from pydantic import Field, TypeAdapter, ValidationError


def _document_pattern(field_type: Any) -> re.Pattern[str]:
    return re.compile(TypeAdapter(field_type).json_schema()["pattern"])


def test_the_white_space_class_spells_out_every_space_character() -> None:
    space = re.compile(f"[{schemas.SPACES}]")
    found = {chr(code) for code in range(0x110000) if space.fullmatch(chr(code))}
    assert found == set(schemas.SPACE_CHARACTERS)
    # ECMA-262's \s, which Python's differs from
    assert "\x85" not in found and "\x1c" not in found and "\ufeff" in found


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("Ada@Example.COM", "ada@example.com"),
        (" \u3000ada@example.com\n", "ada@example.com"),
        ("\x85ada@example.com", "\x85ada@example.com"),  # not white space to the document
    ],
)
def test_an_address_the_pattern_allows_is_stored_lower_cased(sent: str, stored: str) -> None:
    assert _document_pattern(Email).search(sent)
    assert TypeAdapter(Email).validate_python(sent) == stored


@pytest.mark.parametrize(
    "sent",
    ["ada@example", "ada example@x.org", "ada@exa\x1cmple.org", "a" * 65 + "@x.org", "@x.org"],
)
def test_an_address_the_pattern_refuses_is_refused(sent: str) -> None:
    assert not _document_pattern(Email).search(sent)
    with pytest.raises(ValidationError, match="valid e-mail address"):
        TypeAdapter(Email).validate_python(sent)


def test_an_address_longer_than_the_document_allows_is_refused() -> None:
    sent = "a@" + "b" * 250 + ".org"
    assert _document_pattern(Email).search(sent)
    with pytest.raises(ValidationError):
        TypeAdapter(Email).validate_python(sent)


@pytest.mark.parametrize(("sent", "stored"), [("  Lab  ", "Lab"), ("\u3000x\t", "x")])
def test_a_display_name_loses_the_white_space_around_it(sent: str, stored: str) -> None:
    assert _document_pattern(DisplayName).search(sent)
    assert TypeAdapter(DisplayName).validate_python(sent) == stored


@pytest.mark.parametrize("sent", [" \t\u3000", "x" * 81])
def test_a_blank_or_long_display_name_is_refused(sent: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(DisplayName).validate_python(sent)


class _Body(StrictModel):
    count: int
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    ratio: float = 0.5
    since: int | str = 0
    flag: bool = False


def test_a_whole_number_written_with_a_fraction_is_an_integer() -> None:
    body = _Body.model_validate_json('{"count": 5.0, "limit": 100.0, "ratio": 2.0, "since": 7.0}')
    assert (body.count, body.limit, body.ratio, body.since) == (5, 100, 2.0, 7)
    assert isinstance(body.count, int) and isinstance(body.since, int)


@pytest.mark.parametrize(
    "sent",
    [
        '{"count": 5.5}',
        '{"count": true}',
        '{"count": "5"}',
        '{"count": 1e300}',  # past what a float holds exactly
        '{"count": 1, "flag": 1.0}',
        '{"count": 1, "limit": 101.0}',
    ],
)
def test_other_numbers_are_not_integers(sent: str) -> None:
    with pytest.raises(ValidationError):
        _Body.model_validate_json(sent)


class _Patch(StrictModel):
    not_null = frozenset({"name"})

    name: str | None = None
    note: str | None = None


def test_a_not_null_field_has_no_null_in_the_document() -> None:
    properties = _Patch.model_json_schema()["properties"]
    assert properties["name"] == {"title": "Name", "type": "string"}
    assert {"type": "null"} in properties["note"]["anyOf"]
