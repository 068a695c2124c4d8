"""Pictures are kept clean (kumo.media.images, ADR 28): no EXIF or GPS left, upright, WebP
thumbnails, and what does not decode in full, or decodes too large, is refused."""

from __future__ import annotations

import io

import pytest
from kumo.media.images import MAX_PIXELS, THUMBNAIL_SIZES, NotAPicture, clean
from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112
ROTATED_90_CLOCKWISE = 6


def _jpeg_with_gps(width: int = 300, height: int = 200) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = ROTATED_90_CLOCKWISE
    exif[0x010F] = "PhoneMaker"  # Make
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 18.0)})
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "JPEG", exif=exif, comment=b"hi")
    return out.getvalue()


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, "PNG")
    return out.getvalue()


def test_a_photo_loses_its_exif_and_gps_and_stands_upright() -> None:
    # Given a JPEG with GPS coordinates, a maker and an orientation tag
    original = _jpeg_with_gps(300, 200)
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)

    # When it is cleaned
    picture = clean(original, "jpeg")

    # Then what is kept has no metadata at all, and is turned as the tag said
    kept = Image.open(io.BytesIO(picture.data))
    assert kept.format == "JPEG"
    assert dict(kept.getexif()) == {}
    assert "exif" not in kept.info and "comment" not in kept.info
    assert kept.size == (200, 300) == (picture.width, picture.height)
    assert picture.content_type == "image/jpeg"


def test_thumbnails_are_webp_within_their_size() -> None:
    picture = clean(_jpeg_with_gps(1200, 800), "jpeg")

    assert set(picture.thumbnails) == set(THUMBNAIL_SIZES)
    for size, data in picture.thumbnails.items():
        thumbnail = Image.open(io.BytesIO(data))
        assert thumbnail.format == "WEBP"
        assert max(thumbnail.size) == size
        assert dict(thumbnail.getexif()) == {}


def test_a_small_picture_keeps_its_size_in_its_thumbnails() -> None:
    picture = clean(_png((40, 20), "RGBA"), "png")
    assert Image.open(io.BytesIO(picture.thumbnails[512])).size == (40, 20)


@pytest.mark.parametrize(("kind", "form"), [("png", "PNG"), ("gif", "GIF")])
def test_a_palette_picture_keeps_its_transparent_colour(kind: str, form: str) -> None:
    # Given a palette picture whose colour 0 is transparent, half of it in that colour
    image = Image.new("P", (40, 40), 1)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(0, (20, 0, 40, 40))
    out = io.BytesIO()
    image.save(out, form, transparency=0)

    # When it is cleaned
    picture = clean(out.getvalue(), kind)  # type: ignore[arg-type]

    # Then the transparent half is transparent still, in the original and in the thumbnails
    with Image.open(io.BytesIO(picture.data)) as kept:
        assert kept.convert("RGBA").getpixel((30, 5))[3] == 0
        assert kept.convert("RGBA").getpixel((5, 5))[3] == 255
    for data in picture.thumbnails.values():
        with Image.open(io.BytesIO(data)) as small:
            assert small.mode == "RGBA"
            assert small.getpixel((small.width - 1, 0))[3] == 0


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    # A 1-bit PNG of 60 megapixels is a few kilobytes on disk
    bomb = _png((10_000, 6_000), "1")
    assert len(bomb) < 100_000 and MAX_PIXELS < 10_000 * 6_000

    with pytest.raises(NotAPicture, match="more than"):
        clean(bomb, "png")


def test_a_truncated_picture_is_refused() -> None:
    whole = _png((64, 64))
    with pytest.raises(NotAPicture, match="does not decode"):
        clean(whole[: len(whole) // 2], "png")


def test_bytes_of_another_kind_are_refused() -> None:
    # Sniffed as one kind, decoded as that kind only
    with pytest.raises(NotAPicture, match="as jpeg"):
        clean(_png((8, 8)), "jpeg")
    with pytest.raises(NotAPicture, match="not a picture"):
        clean(b"%PDF-1.7\n", "pdf")
