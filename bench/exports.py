"""A CSV export's time from POST to ready on the local stack (ADR 15).

    .venv/bin/python bench/exports.py [--readings 10000] [--per-message 50] [--metrics 3]
                                      [--resolution raw] [--endpoints PATH]

Needs the local stack (`make up`). As the demo admin it registers a device in the org
"Kumo bench", posts N readings a second apart (ending a minute ago) with the device's key
over HTTP, `--per-message` to a request (each request is stored before it is answered),
then requests an export of the whole range and polls it every 100 ms until it is ready. It
prints the time from POST to ready, the rows and bytes of the file, and the time the
pre-signed download took. It deletes the device at the end. Loopback only; bounded by a
deadline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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

DEFAULT_ENDPOINTS = ROOT / ".local" / "endpoints.json"
DEADLINE_SECONDS = 600.0


def post_readings(api: Api, key: str, readings: int, per_message: int, metrics: int) -> int:
    """N readings a second apart, the last a minute ago; answers the first one's time."""
    first = (int(time.time()) - 60 - readings) * 1000
    for start in range(0, readings, per_message):
        batch = [
            {
                "ts": first + i * 1000,
                "metrics": {f"m{k}": round(20 + k + (i % 600) / 100, 2) for k in range(metrics)},
            }
            for i in range(start, min(start + per_message, readings))
        ]
        answer = api.call(
            "POST", "/api/v1/device/readings", 202, token=key, json={"readings": batch}
        )
        if answer["accepted"] + answer["duplicates"] != len(batch):
            raise BenchError(f"readings refused: {answer['rejected'][:3]}")
    return first


def run(options: argparse.Namespace) -> None:
    endpoints = json.loads(Path(options.endpoints).read_text())
    base = str(endpoints["api"]).rstrip("/")
    require_loopback(base)
    api = Api(base)
    api.token = sign_in(api, endpoints)
    org_id = bench_org(api)
    device = api.call(
        "POST", "/api/v1/devices", 201, json={"org_id": org_id, "name": "export bench"}
    )
    try:
        started = time.perf_counter()
        first = post_readings(
            api, device["api_key"], options.readings, options.per_message, options.metrics
        )
        posted = time.perf_counter() - started
        body = {
            "from": first,
            "to": first + (options.readings - 1) * 1000,
            "metrics": [f"m{k}" for k in range(options.metrics)],
            "resolution": options.resolution,
        }
        exports = f"/api/v1/devices/{device['id']}/exports"
        requested = time.perf_counter()
        export = api.call("POST", exports, 202, json=body)
        deadline = requested + DEADLINE_SECONDS
        while export["status"] != "ready":
            if export["status"] == "failed" or time.perf_counter() > deadline:
                raise BenchError(f"export not ready: {export['status']} {export['error']}")
            time.sleep(0.1)
            export = api.call("GET", f"{exports}/{export['id']}", 200)
        ready = time.perf_counter() - requested
        fetch_started = time.perf_counter()
        fetched = requests.get(export["download_url"], timeout=TIMEOUT_SECONDS)
        fetched.raise_for_status()
        fetch = time.perf_counter() - fetch_started
    finally:
        api.call("DELETE", f"/api/v1/devices/{device['id']}", 204)
    print(f"CSV export on the local stack at {endpoints['gateway']}")
    print(
        f"  readings posted   {options.readings:>10,} ({options.metrics} metrics, "
        f"{options.per_message} a message) in {posted:.1f} s"
    )
    print(f"  resolution        {options.resolution:>10}")
    print(f"  rows              {export['row_count']:>10,}")
    print(f"  bytes             {export['byte_size']:>10,}")
    print(f"  POST to ready     {ready:>10.2f} s (polled every 100 ms)")
    print(f"  download          {fetch:>10.3f} s ({len(fetched.content):,} bytes)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--readings", type=int, default=10_000)
    parser.add_argument("--per-message", type=int, default=50, help="1 to 500")
    parser.add_argument("--metrics", type=int, default=3, help="1 to 32")
    parser.add_argument("--resolution", default="raw", choices=["raw", "1m", "1h", "1d"])
    parser.add_argument("--endpoints", default=str(DEFAULT_ENDPOINTS))
    options = parser.parse_args(argv)
    if not 1 <= options.readings <= 200_000:
        parser.error("--readings is 1 to 200000")
    if not 1 <= options.per_message <= 500 or not 1 <= options.metrics <= 32:
        parser.error("--per-message is 1 to 500, --metrics 1 to 32")
    try:
        run(options)
    except (BenchError, requests.RequestException, OSError, KeyError) as error:
        print(f"bench/exports.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
