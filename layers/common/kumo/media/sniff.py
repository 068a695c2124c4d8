"""What a file is, judged by its first bytes, never by its name or the type a client declared
(docs/adr/0028). Only the kinds Kumo serves are recognised; everything else, SVG and HTML
included (they carry scripts), is unknown, and an unknown file is refused."""

from __future__ import annotations

from typing import Final, Literal

Kind = Literal["png", "jpeg", "gif", "webp", "pdf"]

# How many leading bytes `sniff` needs: a ranged GET of this much is enough to judge.
HEAD_BYTES: Final = 16
CONTENT_TYPES: Final[dict[Kind, str]] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "pdf": "application/pdf",
}
IMAGES: Final[frozenset[Kind]] = frozenset({"png", "jpeg", "gif", "webp"})

_SIGNATURES: Final[tuple[tuple[bytes, Kind], ...]] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    # At the very start: a reader that looks for the header further in would also take an
    # HTML page with a PDF inside it.
    (b"%PDF-", "pdf"),
)


def sniff(head: bytes) -> Kind | None:
    """The kind of a file from its first HEAD_BYTES bytes, or None when it is none of Kumo's."""
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    # RIFF, the chunk size, then the form type.
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None
