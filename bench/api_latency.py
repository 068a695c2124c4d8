"""`make bench`, part 2: request latency through the local API Gateway, warm functions.

    .venv/bin/python bench/api_latency.py [--requests 200] [--warmup 10] [--endpoints PATH]

Reads the URLs and the demo accounts `make up` wrote to .local/endpoints.json, signs in as the
demo user, then sends requests one after another (one keep-alive session) to three routes:
the liveness probe (no layer, no authorizer), the caller's profile (authorizer + DynamoDB read)
and sign-in (argon2 verification + DynamoDB writes). Loopback only; stops after the count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.local import (  # noqa: E402 (the repository root goes on the path first)
    TIMEOUT_SECONDS,
    BenchError,
    require_loopback,
)

DEFAULT_ENDPOINTS = ROOT / ".local" / "endpoints.json"


@dataclass(frozen=True, slots=True)
class Probe:
    label: str
    method: str
    url: str
    expected_status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Result:
    label: str
    latencies_ms: list[float]
    elapsed_seconds: float

    def percentile(self, p: int) -> float:
        if len(self.latencies_ms) == 1:
            return self.latencies_ms[0]
        # 99 cut points; "inclusive" keeps them within the observed range.
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]


def load_endpoints(path: Path) -> tuple[str, dict[str, str]]:
    """The API base URL and the demo user's credentials, from what `make up` wrote."""
    if not path.exists():
        raise BenchError(f"{path} not found: run `make up` first")
    data = json.loads(path.read_text())
    api = str(data["api"]).rstrip("/")
    accounts = (data.get("demo") or {}).get("accounts") or []
    if not accounts:
        raise BenchError(f"{path} has no demo accounts: run `make up` first (it seeds them)")
    account = next((a for a in accounts if a.get("role") == "user"), accounts[0])
    return api, {"email": str(account["email"]), "password": str(account["password"])}


def send(session: requests.Session, probe: Probe) -> requests.Response:
    response = session.request(
        probe.method, probe.url, headers=probe.headers, json=probe.body, timeout=TIMEOUT_SECONDS
    )
    if response.status_code != probe.expected_status:
        raise BenchError(
            f"{probe.label}: HTTP {response.status_code} (expected {probe.expected_status}): "
            f"{response.text[:300]}"
        )
    return response


def sign_in(session: requests.Session, api: str, credentials: dict[str, str]) -> str:
    probe = Probe("sign-in", "POST", f"{api}/api/v1/auth/login", 200, body=credentials)
    token = send(session, probe).json()["access_token"]
    return str(token)


def run(session: requests.Session, probe: Probe, requests_count: int, warmup: int) -> Result:
    print(
        f"  {probe.label}: {warmup} warm-up + {requests_count} timed", file=sys.stderr, flush=True
    )
    # Warm-up also absorbs the cold start of a function the gateway has not run yet.
    for _ in range(warmup):
        send(session, probe)
    latencies = []
    started = time.perf_counter()
    for _ in range(requests_count):
        sent = time.perf_counter()
        send(session, probe)
        latencies.append((time.perf_counter() - sent) * 1000)
    return Result(probe.label, latencies, time.perf_counter() - started)


def report(results: list[Result]) -> None:
    width = max(len(r.label) for r in results)
    columns = ("n", "p50 ms", "p95 ms", "p99 ms", "mean ms", "req/s")
    print(f"  {'route':<{width}}" + "".join(f"  {c:>8}" for c in columns))
    for r in results:
        figures = (
            f"{len(r.latencies_ms):>8}",
            f"{r.percentile(50):>8.1f}",
            f"{r.percentile(95):>8.1f}",
            f"{r.percentile(99):>8.1f}",
            f"{statistics.fmean(r.latencies_ms):>8.1f}",
            f"{len(r.latencies_ms) / r.elapsed_seconds:>8.1f}",
        )
        print(f"  {r.label:<{width}}" + "".join(f"  {f}" for f in figures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/api_latency.py", description=__doc__)
    parser.add_argument("--endpoints", type=Path, default=DEFAULT_ENDPOINTS)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per route")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per route first")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be at least 1 and --warmup at least 0")

    try:
        api, credentials = load_endpoints(args.endpoints)
        require_loopback(api)
        with requests.Session() as session:
            session.trust_env = False  # no HTTP(S)_PROXY or .netrc between us and loopback
            live = Probe("GET /api/v1/health/live", "GET", f"{api}/api/v1/health/live", 200)
            login = Probe(
                "POST /api/v1/auth/login", "POST", f"{api}/api/v1/auth/login", 200, body=credentials
            )
            # Signed in just before use: the access token lives for minutes, not for the run.
            results = [run(session, live, args.requests, args.warmup)]
            token = sign_in(session, api, credentials)
            me = Probe(
                "GET /api/v1/users/me",
                "GET",
                f"{api}/api/v1/users/me",
                200,
                headers={"Authorization": f"Bearer {token}"},
            )
            results.append(run(session, me, args.requests, args.warmup))
            results.append(run(session, login, args.requests, args.warmup))
    except (BenchError, requests.RequestException) as error:
        print(f"api_latency: {error}", file=sys.stderr)
        return 1
    print(f"Latency through the local gateway at {api}, sequential, warm")
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
