"""The three places that pin versions agree: pyproject.toml (what Kumo asks for),
requirements.lock (the venv, everything) and layers/common/requirements.txt (what the layer
ships). A pin changed in one and not the others fails here, naming the package."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.support.template import ROOT

PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
LAYER = ROOT / "layers" / "common" / "requirements.txt"
MEDIA_LAYER = ROOT / "layers" / "media" / "requirements.txt"
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def canonical(name: str) -> str:
    """PEP 503: `PyJWT`, `typing_extensions` and `typing-extensions` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lines: list[str], source: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = PIN.match(text)
        assert match, f"{source}: {line.strip()!r} is not an exact pin (name==version)"
        pins[canonical(match.group(1))] = match.group(2)
    return pins


def file_pins(path: Path) -> dict[str, str]:
    return parse_pins(path.read_text().splitlines(), path.name)


def pyproject_pins() -> tuple[dict[str, str], dict[str, str]]:
    """The shared layer's runtime pins, and every other group's (dev, the media layer's)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    runtime = parse_pins(project["dependencies"], "pyproject.toml dependencies")
    others: dict[str, str] = {}
    for group, pins in project["optional-dependencies"].items():
        others |= parse_pins(pins, f"pyproject.toml {group}")
    return runtime, others


def disagreements(
    wanted: dict[str, str], wanted_in: str, found: dict[str, str], found_in: str
) -> list[str]:
    problems = []
    for name, version in sorted(wanted.items()):
        if name not in found:
            problems.append(f"{name}: {wanted_in} pins {version}, {found_in} does not list it")
        elif found[name] != version:
            problems.append(f"{name}: {wanted_in} pins {version}, {found_in} pins {found[name]}")
    return problems


def test_pins_parse_a_name_with_extras_and_spellings() -> None:
    pins = parse_pins(["moto[dynamodb,sqs]==5.2.1", "PyJWT==2.15.1  # why", "# a note"], "t")
    assert pins == {"moto": "5.2.1", "pyjwt": "2.15.1"}


def test_pins_find_a_version_that_differs() -> None:
    problems = disagreements({"pydantic": "2.13.4"}, "a", {"pydantic": "2.13.5"}, "b")
    assert problems == ["pydantic: a pins 2.13.4, b pins 2.13.5"]


def test_pins_refuse_a_range() -> None:
    with pytest.raises(AssertionError, match="not an exact pin"):
        parse_pins(["pydantic>=2"], "t")


def test_pins_of_pyproject_are_the_locked_versions() -> None:
    runtime, dev = pyproject_pins()
    lock = file_pins(LOCK)
    problems = disagreements({**runtime, **dev}, "pyproject.toml", lock, "requirements.lock")
    assert problems == [], "\n".join(problems)


def test_pins_of_the_layer_are_the_locked_versions() -> None:
    problems = disagreements(
        file_pins(LAYER), "layers/common/requirements.txt", file_pins(LOCK), "requirements.lock"
    )
    assert problems == [], "\n".join(problems)


def test_pins_of_the_media_layer_are_the_locked_versions() -> None:
    media = file_pins(MEDIA_LAYER)
    problems = disagreements(
        media, "layers/media/requirements.txt", file_pins(LOCK), "requirements.lock"
    )
    assert media, "the media layer pins Pillow"
    assert problems == [], "\n".join(problems)


def test_pins_of_pyproject_runtime_are_shipped_by_the_layer() -> None:
    runtime, _ = pyproject_pins()
    problems = disagreements(
        runtime, "pyproject.toml dependencies", file_pins(LAYER), "layers/common/requirements.txt"
    )
    assert problems == [], "\n".join(problems)
