"""`make bench`, part 6: how long the media validator's picture work takes (ADR 28).

    .venv/bin/python bench/media.py [--runs 9]

For a 200 KB PNG and a 12-megapixel JPEG (4000 x 3000, with EXIF and GPS), made here with
Pillow, it times `kumo.media.images.clean` (full decode, orientation, re-encoding without
metadata, the 128 and 512 px WebP thumbnails) and, apart, the thumbnails alone, printing p50,
p95 and max in milliseconds; and the import of `kumo.media.images` (Pillow included) in a fresh
interpreter, a cold start's share. No stack is needed: this is the work inside the function,
not the upload around it.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "common")]

from kumo.media import images  # noqa: E402
from PIL import Image  # noqa: E402

GPS_IFD = 0x8825


def png_of_about(target_bytes: int) -> bytes:
    # Noise does not compress: a square of grey noise whose PNG is about the target size.
    side = int((target_bytes / 2.6) ** 0.5)
    noise = Image.effect_noise((side, side), 64).convert("RGB")
    out = io.BytesIO()
    noise.save(out, "PNG")
    return out.getvalue()


def photo_of(width: int, height: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turned on its side
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0)})
    # A gradient with grain: about the few megabytes a phone's photo of that size weighs.
    gradient = Image.linear_gradient("L").resize((width, height))
    grain = Image.effect_noise((width, height), 40)
    photo = Image.merge("RGB", (gradient, Image.blend(gradient, grain, 0.5), grain))
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def _timed(work: Callable[[], object], runs: int) -> list[float]:
    work()  # untimed: first calls warm Pillow's codecs
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)


def _row(name: str, times: list[float]) -> str:
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return f"  {name:<34} p50 {statistics.median(times):8.1f}  p95 {p95:8.1f}  max {times[-1]:8.1f}"


def _import_ms(runs: int) -> list[float]:
    child = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); t = time.perf_counter(); "
        "import kumo.media.images; print((time.perf_counter() - t) * 1000)"
    )
    layer = str(ROOT / "layers" / "common")
    return sorted(
        float(
            subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
                [sys.executable, "-c", child, layer], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)

    png = png_of_about(200_000)
    photo = photo_of(4000, 3000)
    print(f"media: picture work, {args.runs} runs each, milliseconds")
    print(f"  (PNG {len(png) / 1000:.0f} KB; JPEG 4000 x 3000, {len(photo) / 1e6:.1f} MB)")
    print(_row("clean 200 KB PNG", _timed(lambda: images.clean(png, "png"), args.runs)))
    print(_row("clean 12 MP JPEG", _timed(lambda: images.clean(photo, "jpeg"), args.runs)))
    with Image.open(io.BytesIO(photo)) as opened:
        opened.load()

        def thumbnails() -> object:
            return [images.thumbnail(opened, size) for size in images.THUMBNAIL_SIZES]

        print(_row("thumbnails of the 12 MP JPEG", _timed(thumbnails, args.runs)))
    print(_row("import kumo.media.images (cold)", _import_ms(args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
