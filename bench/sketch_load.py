"""Loading a sketch of 10,000 strokes on the local stack (ADR 29).

    .venv/bin/python bench/sketch_load.py [--strokes 10000] [--runs 5] [--endpoints PATH]

Needs the local stack (`make up`). As the demo admin, in the org "Kumo bench", it creates a
channel and a sketch, then writes the strokes straight into the chat table (20 points each,
as the `draw` route stores them: drawing 10,000 over the socket one by one would measure the
socket, not the load) and queues the sketch for compaction, timing until every full segment
is in S3. Then, `--runs` times, it loads the sketch as a late joiner does: GET .../replay, then
every segment's gzipped JSON from its link, side by side, plus the tail, and checks that
every stroke came back in order; and, for comparison, reads the same operations page by page
from GET .../strokes. Last it times GET .../svg. The channel is deleted at the end (with the
sketch and its segment files). Loopback only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
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

DEFAULT_ENDPOINTS = ROOT / ".local" / "endpoints.json"
DEADLINE_SECONDS = 300.0
SEGMENT_SIZE = 200  # kumo.chat.segments.SEGMENT_SIZE
POINTS = 20


def _client(endpoints: dict[str, Any], service: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoints["gateway"],
        region_name=endpoints.get("region", "us-east-1"),
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 - the local engine's fixed credentials
    )


def _op(n: int) -> str:
    """A stroke of 20 points, rounded to a tenth, as the draw route stores it."""
    x, y = 10 + (n * 37) % 1800, 10 + (n * 53) % 1000
    points = [[round(x + i * 3.3, 1), round(y + (i * i) % 40 + 0.5, 1)] for i in range(POINTS)]
    op = {"kind": "stroke", "tool": "pen", "color": "#1f77b4", "width": 2.0, "points": points}
    return json.dumps(op, separators=(",", ":"))


def write_strokes(endpoints: dict[str, Any], sketch_id: str, author: str, count: int) -> float:
    """Store `count` strokes and move the sketch's counter; the seconds it took."""
    dynamodb = _client(endpoints, "dynamodb")
    table = f"kumo-{endpoints.get('stage', 'local')}-chat"
    started = time.perf_counter()
    items = [
        {
            "PutRequest": {
                "Item": {
                    "pk": {"S": f"SKETCH#{sketch_id}"},
                    "sk": {"S": f"OP#{seq:012d}"},
                    "seq": {"N": str(seq)},
                    "author_id": {"S": author},
                    "at": {"S": "2026-01-01T00:00:00.000Z"},
                    "t_ms": {"N": str(seq * 250)},
                    "op": {"S": _op(seq)},
                }
            }
        }
        for seq in range(1, count + 1)
    ]
    for start in range(0, len(items), 25):
        batch = {table: items[start : start + 25]}
        while batch:
            batch = dynamodb.batch_write_item(RequestItems=batch).get("UnprocessedItems") or {}
    dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": f"SKETCH#{sketch_id}"}, "sk": {"S": "META"}},
        UpdateExpression="SET seq = :n",
        ExpressionAttributeValues={":n": {"N": str(count)}},
    )
    return time.perf_counter() - started


def compact(endpoints: dict[str, Any], api: Api, path: str, sketch_id: str, count: int) -> float:
    """Queue the sketch for compaction; the seconds until every full segment is listed."""
    sqs = _client(endpoints, "sqs")
    queue = sqs.get_queue_url(QueueName=f"kumo-{endpoints.get('stage', 'local')}-sketch-compaction")
    started = time.perf_counter()
    sqs.send_message(QueueUrl=queue["QueueUrl"], MessageBody=json.dumps({"sketch_id": sketch_id}))
    wanted = count // SEGMENT_SIZE
    while time.perf_counter() - started < DEADLINE_SECONDS:
        if len(api.call("GET", f"{path}/replay", 200)["segments"]) >= wanted:
            return time.perf_counter() - started
        time.sleep(0.5)
    raise BenchError(f"compaction not done within {DEADLINE_SECONDS:.0f} s")


def _segment(url: str) -> list[dict[str, Any]]:
    response = requests.get(url, timeout=TIMEOUT_SECONDS)
    if response.status_code != 200:
        raise BenchError(f"segment: HTTP {response.status_code}")
    # Stored gzipped with Content-Encoding: gzip, which requests (as a browser) undoes.
    raw = response.content
    ops: list[dict[str, Any]] = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    return ops


def load(api: Api, path: str, pool: ThreadPoolExecutor) -> tuple[float, int, int]:
    """A late joiner's load: seconds, operations, bytes read."""
    started = time.perf_counter()
    replay = api.call("GET", f"{path}/replay", 200)
    parts = list(pool.map(_segment, [s["url"] for s in replay["segments"]]))
    ops = [op for part in parts for op in part] + replay["tail"]
    elapsed = time.perf_counter() - started
    if [op["seq"] for op in ops] != list(range(1, len(ops) + 1)):
        raise BenchError("the loaded operations are not 1..n in order")
    return elapsed, len(ops), sum(int(s["bytes"]) for s in replay["segments"])


def paged(api: Api, path: str) -> tuple[float, int]:
    """The same operations through GET .../strokes, 100 a page: seconds, operations."""
    started, count, cursor = time.perf_counter(), 0, None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = api.call("GET", f"{path}/strokes", 200, params=params)
        count += len(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return time.perf_counter() - started, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strokes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--endpoints", type=Path, default=DEFAULT_ENDPOINTS)
    args = parser.parse_args()
    if not args.endpoints.exists():
        print(f"no local stack: {args.endpoints} is missing; run `make up` first", file=sys.stderr)
        return 1
    endpoints = json.loads(args.endpoints.read_text())
    for url in (endpoints["api"], endpoints["gateway"]):
        require_loopback(url)
    api = Api(endpoints["api"])
    channel_path = ""
    try:
        api.token = sign_in(api, endpoints)
        me = api.call("GET", "/api/v1/users/me", 200)
        body = {"org_id": bench_org(api), "name": f"bench-sketch-{uuid.uuid4().hex[:8]}"}
        channel = api.call("POST", "/api/v1/chat/channels", 201, json=body)
        channel_path = f"/api/v1/chat/channels/{channel['id']}"
        sketch = api.call("POST", f"{channel_path}/sketches", 201, json={"title": "bench"})
        path = f"{channel_path}/sketches/{sketch['id']}"
        wrote = write_strokes(endpoints, sketch["id"], me["id"], args.strokes)
        compacted = compact(endpoints, api, path, sketch["id"], args.strokes)
        print(f"sketch of {args.strokes:,} strokes ({POINTS} points each)")
        print(
            f"  written to the table in {wrote:.1f} s; compacted into segments in {compacted:.1f} s"
        )
        with ThreadPoolExecutor(max_workers=8) as pool:
            loads = [load(api, path, pool) for _ in range(args.runs)]
        _, ops, size = loads[-1]
        times = [elapsed for elapsed, _, _ in loads]
        print(
            f"  load (replay + {args.strokes // SEGMENT_SIZE} segments side by side + tail): "
            f"p50 {statistics.median(times) * 1000:.0f} ms, best {min(times) * 1000:.0f} ms, "
            f"{ops:,} operations, {size / 1024:.0f} KiB gzipped"
        )
        seconds, count = paged(api, path)
        print(
            f"  the same through GET .../strokes, 100 a page: {seconds * 1000:.0f} ms "
            f"({count:,} operations)"
        )
        started = time.perf_counter()
        svg = api.session.get(
            api.base + f"{path}/svg",
            headers={"Authorization": f"Bearer {api.token}"},
            timeout=TIMEOUT_SECONDS * 4,
        )
        if svg.status_code != 200:
            raise BenchError(f"svg: HTTP {svg.status_code} {svg.text[:200]}")
        print(
            f"  SVG export: {(time.perf_counter() - started) * 1000:.0f} ms, "
            f"{len(svg.content) / 1024:.0f} KiB"
        )
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    finally:
        if channel_path:
            api.session.delete(
                api.base + channel_path,
                headers={"Authorization": f"Bearer {api.token}"},
                timeout=TIMEOUT_SECONDS * 4,
            )
        api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
