"""The local stack's own figures: a burst of sign-ins, `down`, `up` again, and a one-handler change.

    .venv/bin/python bench/local_stack.py --state-dir /tmp/kumo-x [--logins 300] [--clients 30]

On a stack that `up` started with that state folder (it finds the port in stack.json), in this
order: N sign-ins of the demo user from C clients at once (the answers by status, p50 and the
slowest); `down` (seconds, and processes of the stack left); `up` again with nothing changed
(seconds, the engine restarting on its saved state); then one handler's code changed (a
comment appended to functions/core/liveness/app.py, removed again afterwards) and `up` (the
fast path's seconds). It stops the stack's engine and starts it again: never run it against a
stack whose traffic matters.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.local import require_loopback  # noqa: E402
from infra.local import stack as local_stack  # noqa: E402

HANDLER = ROOT / "functions" / "core" / "liveness" / "app.py"


def burst(endpoints: dict[str, object], logins: int, clients: int) -> str:
    api = str(endpoints["api"])
    require_loopback(api)
    user = endpoints["demo"]["accounts"][1]  # type: ignore[index]
    body = {"email": user["email"], "password": user["password"]}

    def sign_in(_: int) -> tuple[str, float]:
        started = time.monotonic()
        try:
            answer = requests.post(f"{api}/api/v1/auth/login", json=body, timeout=300)
            outcome = str(answer.status_code)
        except requests.RequestException as error:
            outcome = type(error).__name__
        return outcome, time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(sign_in, range(logins)))
    took = time.monotonic() - started
    statuses = Counter(outcome for outcome, _ in results)
    seconds = sorted(duration for _, duration in results)
    return (
        f"{logins} sign-ins from {clients} clients in {took:.1f} s: "
        + ", ".join(f"{status} x{n}" for status, n in sorted(statuses.items()))
        + f"; p50 {statistics.median(seconds):.2f} s, slowest {seconds[-1]:.2f} s"
    )


def up(state_dir: Path) -> float:
    started = time.monotonic()
    subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "infra.local.stack",
            "up",
            "--no-simulator",
            "--state-dir",
            str(state_dir),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--clients", type=int, default=30)
    args = parser.parse_args()
    state_dir = args.state_dir.resolve()
    port = local_stack.recorded_port(state_dir)
    if port is None:
        print(f"no stack recorded in {state_dir}: `up` it first", file=sys.stderr)
        return 1
    stack = local_stack.Stack(port=port, state_dir=state_dir)
    endpoints = json.loads(local_stack.endpoints_path(state_dir).read_text())
    print(burst(endpoints, args.logins, args.clients), flush=True)

    workers = len(local_stack.stack_processes(stack))
    started = time.monotonic()
    local_stack.stop_engine(stack)
    left = local_stack.stack_processes(stack)
    print(
        f"down: {time.monotonic() - started:.1f} s for {workers} processes; left: {len(left)}",
        flush=True,
    )
    print(f"up after down (nothing changed): {up(state_dir):.1f} s", flush=True)

    original = HANDLER.read_text()
    try:
        HANDLER.write_text(original + f"# bench {time.time()}\n")
        print(f"up after a one-handler change: {up(state_dir):.1f} s", flush=True)
    finally:
        HANDLER.write_text(original)
    print(f"up after changing it back: {up(state_dir):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
