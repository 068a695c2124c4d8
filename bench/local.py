"""What the benchmarks that drive the local stack over HTTP share: the loopback guard, an API
client, the demo admin's sign-in and the "Kumo bench" org."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import requests

TIMEOUT_SECONDS = 30
ORG_NAME = "Kumo bench"


class BenchError(Exception):
    """The stack is missing or answered something other than what the benchmark expects."""


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BenchError(f"refusing {url}: the benchmark only targets a loopback stack")


class Api:
    """One keep-alive session (one per thread: a requests.Session is not thread-safe)."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base, self.token = base, token
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or .netrc between us and loopback

    def call(
        self, method: str, path: str, expected: int, token: str | None = None, **kwargs: Any
    ) -> Any:
        """`token` (a device key, say) stands in for the session's token on this call."""
        bearer = token or self.token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        response = self.session.request(
            method, self.base + path, headers=headers, timeout=TIMEOUT_SECONDS, **kwargs
        )
        if response.status_code != expected:
            raise BenchError(
                f"{method} {path}: HTTP {response.status_code} (expected {expected}): "
                f"{response.text[:300]}"
            )
        return response.json() if response.content else None

    def close(self) -> None:
        self.session.close()


def sign_in(api: Api, endpoints: dict[str, Any]) -> str:
    """The demo admin's access token (`make up` seeds the account)."""
    accounts = (endpoints.get("demo") or {}).get("accounts") or []
    admin = next((a for a in accounts if a.get("role") == "admin"), None)
    if admin is None:
        raise BenchError("no demo admin in the endpoints file: run `make up` (it seeds one)")
    body = {"email": admin["email"], "password": admin["password"]}
    return str(api.call("POST", "/api/v1/auth/login", 200, json=body)["access_token"])


def bench_org(api: Api) -> str:
    """The org "Kumo bench" the demo admin owns, created on first use (orgs stay: the API
    deletes none; the benchmarks delete their devices)."""
    cursor: str | None = None
    for _ in range(20):
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = api.call("GET", "/api/v1/orgs", 200, params=params)
        for org in page["items"]:
            if org["name"] == ORG_NAME and org["role"] in ("owner", "admin"):
                return str(org["id"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return str(api.call("POST", "/api/v1/orgs", 201, json={"name": ORG_NAME})["id"])
