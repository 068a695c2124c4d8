"""Pictures as Kumo keeps them (docs/adr/0028): decoded in full under a pixel limit, turned
upright from their EXIF orientation, re-encoded with no metadata (no EXIF, GPS, XMP or
comments; the colour profile stays), with WebP thumbnails.

Pillow comes from the media validator's own layer, not the shared one; only that function
imports this module.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Final

from PIL import Image, ImageOps, UnidentifiedImageError

from kumo.media.sniff import CONTENT_TYPES, IMAGES, Kind

# A 48-megapixel phone photo is 48 M; a decompression bomb is far beyond. Checked on the
# header, before anything is decoded.
MAX_PIXELS: Final = 50_000_000
THUMBNAIL_SIZES: Final = (128, 512)
_FORMATS: Final[dict[Kind, str]] = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP"}
_JPEG_QUALITY: Final = 90
_THUMBNAIL_QUALITY: Final = 80


class NotAPicture(ValueError):
    """The bytes are not a picture Kumo keeps; the message is the reason, said to the user."""


@dataclass(frozen=True, slots=True)
class Picture:
    data: bytes
    content_type: str
    width: int
    height: int
    # Longest side in pixels → a WebP no larger than that.
    thumbnails: dict[int, bytes] = field(default_factory=dict)


def clean(data: bytes, kind: Kind) -> Picture:
    """The picture re-encoded as `kind` without metadata, upright, with its thumbnails; or
    NotAPicture when the bytes do not decode as `kind` in full or are too large."""
    if kind not in IMAGES:
        raise NotAPicture(f"{kind} is not a picture")
    try:
        with Image.open(io.BytesIO(data), formats=[_FORMATS[kind]]) as opened:
            width, height = opened.size
            if width * height > MAX_PIXELS:
                raise NotAPicture(f"{width} x {height} is more than {MAX_PIXELS:,} pixels")
            opened.load()  # every byte decoded: a truncated file fails here
            upright = ImageOps.exif_transpose(opened)
            encoded = _encode(upright, kind, opened.info.get("icc_profile"))
            thumbnails = {size: thumbnail(upright, size) for size in THUMBNAIL_SIZES}
            width, height = upright.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as error:
        # Pillow says "cannot identify", "truncated" or "broken data stream" in its own words.
        raise NotAPicture(f"the file does not decode as {kind}") from error
    return Picture(encoded, CONTENT_TYPES[kind], width, height, thumbnails)


def _encode(image: Image.Image, kind: Kind, icc_profile: bytes | None) -> bytes:
    # A fresh copy carries pixels only: no EXIF, XMP, comments or text chunks to leak. A
    # palette's transparent colour is part of the pixels, though.
    bare = image.copy()
    bare.info = _pixels_only(image.info)
    out = io.BytesIO()
    options: dict[str, object] = {"icc_profile": icc_profile} if icc_profile else {}
    if kind == "jpeg":
        options |= {"quality": _JPEG_QUALITY}
        bare = bare.convert("RGB") if bare.mode not in ("RGB", "L", "CMYK") else bare
    bare.save(out, format=_FORMATS[kind], **options)
    return out.getvalue()


def _pixels_only(info: dict[str | tuple[int, int], Any]) -> dict[str | tuple[int, int], Any]:
    return {"transparency": info["transparency"]} if "transparency" in info else {}


def thumbnail(image: Image.Image, size: int) -> bytes:
    """A WebP of `image` no larger than `size` on its longest side, without metadata."""
    small = image.copy()
    small.info = _pixels_only(image.info)
    small.thumbnail((size, size))
    if small.mode not in ("RGB", "RGBA"):
        # Converted while the palette's transparent colour is still known.
        clear = "transparency" in small.info or "A" in small.mode
        small = small.convert("RGBA" if clear else "RGB")
    small.info = {}
    out = io.BytesIO()
    small.save(out, format="WEBP", quality=_THUMBNAIL_QUALITY)
    return out.getvalue()
