"""A webhook receiver on 127.0.0.1 for the local stack: records every call it gets.

Tests and benchmarks start one in-process; developers can run it to watch their scheduled
tasks fire:  python -m infra.local.receiver --port 9000 [--secret whsec_...]

The answer depends on the path's last segment: `.../status/<code>` answers that code,
`.../redirect?to=<url>` answers 302 to that URL, anything else answers 200. A behaviour can
also be changed per path at run time with `respond(path, code)`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Call:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def signature_valid(self, secret: str, *, tolerance: int = 300) -> bool:
        """What a receiver does (docs/webhooks.md), written out rather than imported."""
        parts = dict(
            item.split("=", 1)
            for item in (self.header("Kumo-Signature") or "").split(",")
            if "=" in item
        )
        timestamp = parts.get("t", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
            return False
        expected = hmac.new(
            secret.encode(), timestamp.encode() + b"." + self.body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    calls: list[Call] = field(default_factory=list)
    overrides: dict[str, int] = field(default_factory=dict)
    # Seconds every answer waits: a slow receiver, for throughput figures.
    delay_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parsed = urlsplit(self.path)
                with receiver._lock:
                    receiver.calls.append(
                        Call(parsed.path, self.command, dict(self.headers), body, time.time())
                    )
                    code = receiver.overrides.get(parsed.path)
                if receiver.delay_seconds:
                    time.sleep(receiver.delay_seconds)
                segments = parsed.path.rstrip("/").split("/")
                if code is None and len(segments) >= 2 and segments[-2] == "status":
                    code = int(segments[-1])
                if segments[-1] == "redirect" and code is None:
                    target = parse_qs(parsed.query).get("to", ["/"])[0]
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = json.dumps({"received": True}).encode()
                self.send_response(code or 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass  # the calls list is the log

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        # A short poll, so stop() returns at once rather than after up to half a second.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def respond(self, path: str, code: int) -> None:
        with self._lock:
            self.overrides[path] = code

    def calls_to(self, path: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path == path]

    def wait_for(self, path: str, *, count: int = 1, timeout: float = 30.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.calls_to(path)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(
            f"{len(self.calls_to(path))} of {count} calls to {path} within {timeout} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", help="check each call's Kumo-Signature with this secret")
    args = parser.parse_args()
    receiver = Receiver(port=args.port).start()
    print(f"listening on {receiver.base}; Ctrl-C stops", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.2)
            for call in receiver.calls[seen:]:
                verdict = ""
                if args.secret:
                    valid = call.signature_valid(args.secret)
                    verdict = " signature ok" if valid else " SIGNATURE INVALID"
                print(
                    f"{time.strftime('%H:%M:%S')} {call.method} {call.path} "
                    f"delivery={call.header('Kumo-Delivery')} attempt={call.header('Kumo-Attempt')}"
                    f"{verdict} {call.body[:200]!r}",
                    flush=True,
                )
            seen = len(receiver.calls)
    except KeyboardInterrupt:
        receiver.stop()


if __name__ == "__main__":
    main()
