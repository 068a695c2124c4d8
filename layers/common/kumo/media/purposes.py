"""What each kind of upload may be (docs/adr/0028): the file kinds it allows, judged from the
bytes (kumo.media.sniff), and its size limit. An upload names its purpose when it asks for a
form; the form and the validator both hold it to these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from kumo.media.sniff import CONTENT_TYPES, IMAGES, Kind

Purpose = Literal["avatar", "attachment", "deck", "lesson", "document"]

MB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Rules:
    kinds: frozenset[Kind]
    max_bytes: int

    @property
    def content_types(self) -> frozenset[str]:
        return frozenset(CONTENT_TYPES[kind] for kind in self.kinds)


_PDF: Final[frozenset[Kind]] = frozenset({"pdf"})

RULES: Final[dict[Purpose, Rules]] = {
    # A face in a circle: an image, small.
    "avatar": Rules(IMAGES, 5 * MB),
    # What a chat message carries: a picture or a PDF.
    "attachment": Rules(IMAGES | _PDF, 20 * MB),
    # A flashcard deck's pictures.
    "deck": Rules(IMAGES, 10 * MB),
    # A lesson plan: a PDF, or its pictures.
    "lesson": Rules(IMAGES | _PDF, 50 * MB),
    # Reports and other papers.
    "document": Rules(_PDF, 50 * MB),
}


def allows(purpose: Purpose, kind: Kind | None, size: int) -> bool:
    """Whether a file of this sniffed kind and size may be kept for this purpose."""
    rules = RULES[purpose]
    return kind is not None and kind in rules.kinds and 0 < size <= rules.max_bytes
