"""PDFs as Kumo keeps them (docs/adr/0028): a PDF from its first byte to its end marker, with
none of the features that run code or carry other files.

Kumo cannot re-encode a PDF as it does a picture, so it keeps the bytes as they came and
refuses what a viewer would act on: JavaScript, launch actions, embedded files, rich media and
XFA forms. The names are looked for in the raw bytes; one hidden in a compressed object
stream is not seen, which is why a PDF is always served as an attachment, never inline.
"""

from __future__ import annotations

import re
from typing import Final

_HEADER: Final = re.compile(rb"%PDF-(1\.[0-7]|2\.0)")
# Writers may put a little after the marker (a line end, padding); readers look this far.
_TAIL_BYTES: Final = 1024
_ACTIVE: Final = re.compile(rb"/(JavaScript|JS|Launch|EmbeddedFiles?|RichMedia|XFA)(?![A-Za-z0-9])")


class NotADocument(ValueError):
    """The bytes are not a PDF Kumo keeps; the message is the reason, said to the user."""


def check_pdf(data: bytes) -> None:
    """Raise NotADocument unless `data` is a whole PDF without active content."""
    if not _HEADER.match(data):
        raise NotADocument("the file does not start as a PDF does")
    if b"%%EOF" not in data[-_TAIL_BYTES:]:
        raise NotADocument("the PDF is incomplete: it has no end marker")
    active = _ACTIVE.search(data)
    if active:
        name = active.group(1).decode()
        raise NotADocument(f"the PDF carries /{name}, which Kumo does not serve")
