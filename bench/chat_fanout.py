"""A chat message's time from send to received, with 10, 100 and 1,000 subscribed sockets on
the local stack (ADR 29).

    .venv/bin/python bench/chat_fanout.py [--sockets 10,100,1000] [--runs 7] [--endpoints PATH]

Needs the local stack (`make up`). As the demo admin, in the org "Kumo bench", it creates a
channel, opens the sockets (one WebSocket connection each, subscribed to the channel's stream),
then sends messages over HTTP one at a time. For each message it records when every socket
received it, from just before the POST: p50 and p95 over all sockets and runs, and the last
socket's time (p50 over runs), what the slowest member waits; and the sender's answer (p50),
which past kumo.realtime.shards.INLINE_LIMIT subscribers no longer waits for the posts. The
first message of each size warms the functions and is not counted. The channel is deleted at
the end. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.local import (  # noqa: E402 (the repository root goes on the path first)
    Api,
    BenchError,
    bench_org,
    require_loopback,
    sign_in,
)

DEFAULT_ENDPOINTS = ROOT / ".local" / "endpoints.json"
DEADLINE_SECONDS = 60.0
# Sockets opened at once: the engine's $connect and subscribe run one function each.
OPENING = 20


async def _open(url: str, token: str, channel_id: str) -> ClientConnection:
    socket = await connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=60
    )
    await socket.send(
        json.dumps({"action": "subscribe", "channel": "chat", "channel_id": channel_id})
    )
    reply = json.loads(await asyncio.wait_for(socket.recv(), DEADLINE_SECONDS))
    if reply.get("event") != "subscribed":
        raise BenchError(f"the subscription failed: {reply}")
    return socket


async def open_sockets(url: str, token: str, channel_id: str, count: int) -> list[ClientConnection]:
    gate = asyncio.Semaphore(OPENING)

    async def one() -> ClientConnection:
        async with gate:
            return await _open(url, token, channel_id)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def _arrival(socket: ClientConnection, seq: int) -> float:
    while True:
        message = json.loads(await socket.recv())
        if message.get("event") == "message" and message["message"]["seq"] == seq:
            return time.perf_counter()


def _send(api: Api, channel_id: str, text: str) -> int:
    """Send over HTTP, waiting out the per-user rate limit if a rerun meets it."""
    path = f"/api/v1/chat/channels/{channel_id}/messages"
    for _ in range(3):
        response = api.session.post(
            api.base + path,
            headers={"Authorization": f"Bearer {api.token}"},
            json={"text": text, "client_id": uuid.uuid4().hex},
            timeout=DEADLINE_SECONDS,
        )
        if response.status_code == 429:
            time.sleep(float(response.headers.get("Retry-After", "5")))
            continue
        if response.status_code != 201:
            raise BenchError(f"send: HTTP {response.status_code} {response.text[:200]}")
        return int(response.json()["seq"])
    raise BenchError("send: still limited after waiting")


async def one_message(
    api: Api, channel_id: str, sockets: list[ClientConnection], seq: int
) -> tuple[float, list[float]]:
    """Seconds from before the send to its answer, and to each socket's receipt of it."""
    waiting = [asyncio.create_task(_arrival(s, seq)) for s in sockets]
    started = time.perf_counter()
    sent = await asyncio.to_thread(_send, api, channel_id, f"bench message {seq}")
    answered = time.perf_counter() - started
    if sent != seq:
        raise BenchError(f"sent seq {sent}, expected {seq}")
    arrivals = await asyncio.wait_for(asyncio.gather(*waiting), DEADLINE_SECONDS)
    return answered, [arrival - started for arrival in arrivals]


def _pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def bench_size(api: Api, url: str, org_id: str, count: int, runs: int) -> dict[str, float]:
    body = {"org_id": org_id, "name": f"bench-fanout-{uuid.uuid4().hex[:8]}"}
    channel_id = api.call("POST", "/api/v1/chat/channels", 201, json=body)["id"]
    sockets: list[ClientConnection] = []
    try:
        opened = time.perf_counter()
        sockets = await open_sockets(url, str(api.token), channel_id, count)
        opening = time.perf_counter() - opened
        await one_message(api, channel_id, sockets, 1)  # warms the functions
        every: list[float] = []
        last: list[float] = []
        answers: list[float] = []
        for seq in range(2, runs + 2):
            answered, times = await one_message(api, channel_id, sockets, seq)
            answers.append(answered)
            every += times
            last.append(max(times))
        return {
            "answer": statistics.median(answers),
            "p50": _pct(every, 0.5),
            "p95": _pct(every, 0.95),
            "last": statistics.median(last),
            "opening": opening,
        }
    finally:
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
        api.call("DELETE", f"/api/v1/chat/channels/{channel_id}", 204)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", default="10,100,1000")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--endpoints", type=Path, default=DEFAULT_ENDPOINTS)
    args = parser.parse_args()
    if not args.endpoints.exists():
        print(f"no local stack: {args.endpoints} is missing; run `make up` first", file=sys.stderr)
        return 1
    endpoints = json.loads(args.endpoints.read_text())
    require_loopback(endpoints["api"])
    require_loopback(endpoints["websocket"])
    api = Api(endpoints["api"])
    try:
        api.token = sign_in(api, endpoints)
        org_id = bench_org(api)
        print(f"chat fan-out, send over HTTP to received on every socket ({args.runs} runs)")
        print(
            f"{'sockets':>8} {'answer ms':>10} {'p50 ms':>9} {'p95 ms':>9} {'last ms':>9}"
            f" {'opened in s':>12}"
        )
        for count in (int(n) for n in args.sockets.split(",")):
            figures = asyncio.run(bench_size(api, endpoints["websocket"], org_id, count, args.runs))
            print(
                f"{count:>8} {figures['answer'] * 1000:>10.1f} {figures['p50'] * 1000:>9.1f}"
                f" {figures['p95'] * 1000:>9.1f} "
                f"{figures['last'] * 1000:>9.1f} {figures['opening']:>12.1f}"
            )
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    finally:
        api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
