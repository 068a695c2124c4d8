"""A file's time from upload-complete to `ready` on the local stack (ADR 28).

    .venv/bin/python bench/media_uploads.py [--runs 7] [--endpoints PATH]

Needs the local stack (`make up`). As the demo admin, in the org "Kumo bench", it asks a form,
uploads with it, and polls GET /api/v1/media/{id} every 50 ms until the validator has judged
the file, for a 200 KB PNG and a 12-megapixel JPEG with EXIF and GPS (made with Pillow, as
bench/media.py makes them). The clock starts when the storage endpoint has answered the upload:
what remains is S3's event, the queue, the validator and the poll. The first upload follows a
change of the validator's configuration, after which the engine starts a new worker: that one
is the cold start, printed apart. Every file is deleted at the end. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.local import (  # noqa: E402 (the repository root goes on the path first)
    TIMEOUT_SECONDS,
    Api,
    BenchError,
    bench_org,
    require_loopback,
    sign_in,
)
from bench.media import photo_of, png_of_about  # noqa: E402

DEFAULT_ENDPOINTS = ROOT / ".local" / "endpoints.json"
DEADLINE_SECONDS = 60.0
POLL_SECONDS = 0.05


def upload(api: Api, org_id: str, name: str, data: bytes, content_type: str) -> tuple[str, float]:
    """Upload one file with its form; its id and the seconds from upload-complete to judged."""
    asked = {
        "org_id": org_id,
        "purpose": "attachment",
        "file_name": name,
        "content_type": content_type,
        "size": len(data),
    }
    answer = api.call("POST", "/api/v1/media/uploads", 201, json=asked)
    form, media_id = answer["upload"], answer["media"]["id"]
    sent = requests.post(
        form["url"],
        data=form["fields"],
        files={"file": (name, data, content_type)},
        timeout=TIMEOUT_SECONDS,
    )
    if sent.status_code != 204:
        raise BenchError(f"upload refused: HTTP {sent.status_code} {sent.text[:200]}")
    uploaded = time.perf_counter()
    while time.perf_counter() - uploaded < DEADLINE_SECONDS:
        media = api.call("GET", f"/api/v1/media/{media_id}", 200)
        if media["state"] == "ready":
            return media_id, time.perf_counter() - uploaded
        if media["state"] == "rejected":
            raise BenchError(f"{name} rejected: {media['reason']}")
        time.sleep(POLL_SECONDS)
    raise BenchError(f"{name} not judged within {DEADLINE_SECONDS:.0f} s")


def new_container(endpoints: dict[str, Any]) -> None:
    """Set the validator's timeout again: the engine drops a function's warm worker on any
    change of its timeout, so the next invocation starts a new one."""
    functions = boto3.client(
        "lambda",
        endpoint_url=str(endpoints["gateway"]),
        region_name=str(endpoints.get("region", "us-east-1")),
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 - the local engine's fixed credentials
    )
    name = f"kumo-{endpoints.get('stage', 'local')}-validate_upload"
    timeout = functions.get_function_configuration(FunctionName=name)["Timeout"]
    functions.update_function_configuration(FunctionName=name, Timeout=timeout)


def _row(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"  {name:<30} p50 {statistics.median(ms):8.1f}  p95 {p95:8.1f}  max {ms[-1]:8.1f}"


def run(options: argparse.Namespace) -> None:
    endpoints = json.loads(Path(options.endpoints).read_text())
    base = str(endpoints["api"]).rstrip("/")
    require_loopback(base)
    require_loopback(str(endpoints["gateway"]))
    api = Api(base)
    api.token = sign_in(api, endpoints)
    org_id = bench_org(api)
    png, photo = png_of_about(200_000), photo_of(4000, 3000)
    made: list[str] = []
    try:
        new_container(endpoints)
        media_id, cold = upload(api, org_id, "cold.png", png, "image/png")
        made.append(media_id)
        timings: dict[str, list[float]] = {"200 KB PNG": [], "12 MP JPEG": []}
        for _ in range(options.runs):
            for label, name, data, kind in (
                ("200 KB PNG", "bench.png", png, "image/png"),
                ("12 MP JPEG", "bench.jpg", photo, "image/jpeg"),
            ):
                media_id, took = upload(api, org_id, name, data, kind)
                made.append(media_id)
                timings[label].append(took)
    finally:
        for media_id in made:
            api.call("DELETE", f"/api/v1/media/{media_id}", 204)
        api.close()
    print(f"media uploads: upload-complete to ready, {options.runs} runs each, milliseconds")
    print(f"  (PNG {len(png) / 1000:.0f} KB; JPEG 4000 x 3000, {len(photo) / 1e6:.1f} MB)")
    for label, seconds in timings.items():
        print(_row(label, seconds))
    print(f"  {'200 KB PNG, new worker (cold)':<30} {cold * 1000:8.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--endpoints", default=str(DEFAULT_ENDPOINTS))
    options = parser.parse_args(argv)
    try:
        run(options)
    except (BenchError, requests.RequestException, OSError) as error:
        print(f"media uploads: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
