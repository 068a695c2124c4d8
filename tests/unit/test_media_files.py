"""A file's kind comes from its bytes (kumo.media.sniff, ADR 28), and a purpose keeps only its own
kinds and sizes (kumo.media.purposes): a PNG named .exe is a PNG, an SVG named .png is nothing."""

from __future__ import annotations

import pytest
from kumo.media.purposes import MB, RULES, allows
from kumo.media.sniff import CONTENT_TYPES, HEAD_BYTES, IMAGES, sniff

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 "


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (PNG, "png"),
        (JPEG, "jpeg"),
        (b"GIF89a\x01\x00\x01\x00", "gif"),
        (b"GIF87a\x01\x00\x01\x00", "gif"),
        (WEBP, "webp"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "pdf"),
    ],
)
def test_the_kinds_kumo_serves_are_known_by_their_first_bytes(head: bytes, kind: str) -> None:
    assert sniff(head[:HEAD_BYTES]) == kind
    assert kind in CONTENT_TYPES


@pytest.mark.parametrize(
    "head",
    [
        b"MZ\x90\x00\x03\x00\x00\x00",  # a Windows executable
        b"\x7fELF\x02\x01\x01\x00",  # a Linux one
        b'<?xml version="1.0"?><svg',
        b"<svg xmlns='http://www.w3.org/2000/svg'>",
        b"<!DOCTYPE html><html>",
        b"  %PDF-1.7 after spaces",  # a PDF header that does not start the file
        b"PK\x03\x04\x14\x00\x00\x00",  # a zip (also every .docx)
        b"RIFF\x24\x00\x00\x00WAVEfmt ",  # RIFF, but a sound
        b"\x89PN",  # too short to be anything
        b"",
    ],
)
def test_anything_else_is_unknown(head: bytes) -> None:
    assert sniff(head) is None


def test_images_are_the_kinds_that_get_decoded() -> None:
    assert {"png", "jpeg", "gif", "webp"} == IMAGES
    assert all(CONTENT_TYPES[kind].startswith("image/") for kind in IMAGES)


def test_each_purpose_allows_its_kinds_up_to_its_size() -> None:
    assert allows("avatar", "png", 5 * MB)
    assert not allows("avatar", "png", 5 * MB + 1)
    assert not allows("avatar", "pdf", 1_000)  # an avatar is a picture
    assert allows("attachment", "pdf", 1_000)
    assert not allows("document", "jpeg", 1_000)
    assert not allows("lesson", None, 1_000)  # unknown bytes: never kept
    assert not allows("deck", "gif", 0)  # an empty file is no picture


def test_every_purpose_serves_only_kinds_that_are_sniffed() -> None:
    for rules in RULES.values():
        assert rules.kinds <= set(CONTENT_TYPES)
        assert not any(t in {"image/svg+xml", "text/html"} for t in rules.content_types)
