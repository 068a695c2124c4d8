"""Unit tests: pure ones build nothing; those that touch AWS ask for `aws` (moto, no network,
tables from template.yaml)."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

STAGE = "test"
QUEUE_BASE = "https://sqs.us-east-1.amazonaws.com/123456789012"
QUEUE_URL = f"{QUEUE_BASE}/kumo-test-mail"
WEBHOOK_QUEUE_URL = f"{QUEUE_BASE}/kumo-test-webhooks"

# Settings are read once at import, so the environment is set before any kumo import; its
# values come from the template, as every environment outside Lambda does (infra.environment).
from infra.environment import environment_for  # noqa: E402

for _key in [k for k in os.environ if k.startswith("AWS_")]:
    del os.environ[_key]
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
)
os.environ.update(
    environment_for(
        STAGE,
        account="123456789012",  # moto's
        websocket_url="https://ws.execute-api.us-east-1.amazonaws.com/test",
        overrides={
            "WEBHOOK_BACKOFF_SECONDS": "2",
            "MAIL_SENDER": "no-reply@kumo.test",
            "APP_URL": "https://app.kumo.test",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        },
    )
)

from tests.support.aws import MotoAccount, take_stray_requests  # noqa: E402

# The telemetry, export and archive tests import these from here; the rest use the factories.
from tests.support.factories import (  # noqa: E402, F401
    PASSWORD,
    principal_for,
    unique_email,
    verified_user,
)
from tests.support.template import ROOT  # noqa: E402


@pytest.fixture(scope="session")
def compiled_stacks() -> dict[str, dict[str, Any]]:
    """The templates infra/stacks.py deploys, compiled once per test process (read only)."""
    from infra import stacks

    return stacks.compile_stacks()


@pytest.fixture(scope="session")
def moto_account() -> Iterator[MotoAccount]:
    """Built on first use, once per test process."""
    account = MotoAccount(STAGE, event_bus=f"kumo-{STAGE}", sender="no-reply@kumo.test")
    yield account
    account.close()


@pytest.fixture
def aws(moto_account: MotoAccount) -> Iterator[None]:
    """Moto running, with the template's tables empty, the queues, the event bus and the SES
    identity: what every test that touches AWS asks for, and pure tests do not."""
    moto_account.start()
    yield
    moto_account.stop()


@pytest.fixture
def media_bucket(aws: None) -> str:
    """The media bucket, which the moto account does not build (only media's tests use it)."""
    import boto3
    from kumo.core.config import get_settings

    name = get_settings().media_bucket
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def fresh_management_client() -> Iterator[None]:
    """The WebSocket management client is cached per container; a test that reads what was
    posted (tests.support.aws.posted_to) gets its own, free of an earlier test's patches."""
    from kumo.realtime import fanout

    fanout.management_client.cache_clear()
    yield
    fanout.management_client.cache_clear()


@pytest.fixture(autouse=True)
def fixed_signing_keys(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The signing key sets (ADR 0021). A test with `aws` reads them from moto's Secrets
    Manager, as a function does, afresh each test; a pure test that signs or checks a token
    or a cursor gets the same sets without moto. Answers secret id -> KeySet."""
    from kumo.core import signing_keys

    from tests.support.aws import SIGNING_KEYS

    signing_keys.forget()
    sets = {
        f"kumo-{STAGE}-{name}": signing_keys.parse_key_set(value)
        for name, value in SIGNING_KEYS.items()
    }
    if "aws" not in request.fixturenames:
        monkeypatch.setattr(signing_keys, "load", lambda secret_id, **_: sets[secret_id])
    return sets


@pytest.fixture(autouse=True)
def no_stray_aws_requests() -> Iterator[None]:
    """A test that reached AWS without the `aws` fixture fails, even if its code swallowed
    the refusal."""
    take_stray_requests()
    yield
    stray = take_stray_requests()
    assert not stray, f"reached AWS without the `aws` fixture: {stray}"


@pytest.fixture
def load_event() -> Callable[[str], dict[str, Any]]:
    """A copy of events/<path>.json, so tests can change it freely."""

    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((ROOT / "events" / f"{name}.json").read_text())
        return copy.deepcopy(data)

    return load


_HANDLERS: dict[str, Any] = {}


def load_handler(function: str) -> Any:
    """Import functions/<function>/app.py under a unique module name, as Lambda would."""
    if function not in _HANDLERS:
        path = ROOT / "functions" / function / "app.py"
        name = "fn_" + function.replace("/", "_")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _HANDLERS[function] = module
    return _HANDLERS[function]


class FakeContext:
    function_name = "kumo-test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:kumo-test"
    aws_request_id = "unit-test-request"


def api_event(
    load_event: Callable[[str], dict[str, Any]],
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    is_base64: bool = False,
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    principal: dict[str, str] | None = None,
    source_ip: str | None = None,
) -> dict[str, Any]:
    """A REST proxy event from events/api/request.json, shaped for one call; `raw_body` is
    sent as it is, `body` as JSON."""
    event = load_event("api/request")
    event["httpMethod"] = method
    event["path"] = path
    event["resource"] = resource or path
    event["requestContext"]["httpMethod"] = method
    event["requestContext"]["resourcePath"] = event["resource"]
    # As called on the execute-api URL: the stage, then the route.
    event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
    event["body"] = raw_body if raw_body is not None else None if body is None else json.dumps(body)
    event["isBase64Encoded"] = is_base64
    event["pathParameters"] = path_parameters
    event["queryStringParameters"] = query
    event["headers"].update(headers or {})
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    if principal is not None:
        event["requestContext"]["authorizer"] = principal
    if source_ip is not None:
        event["requestContext"]["identity"]["sourceIp"] = source_ip
    return event


@pytest.fixture
def call_api(load_event: Callable[[str], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Invoke an API function's handler with a proxy event; the answer's body is parsed."""

    def call(function: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        event = api_event(load_event, method, path, **kwargs)
        response: dict[str, Any] = load_handler(function).lambda_handler(event, FakeContext())
        raw = response.get("body")
        response["json"] = json.loads(raw) if raw else None
        return response

    return call


@pytest.fixture
def ws(load_event: Callable[[str], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Run a WebSocket route's handler as API Gateway would, for `principal` on `connection`
    (what it posts back: tests.support.aws.posted_to)."""

    def send(
        function: str,
        connection: str,
        principal: dict[str, str],
        body: Any = None,
    ) -> dict[str, Any]:
        event = load_event("realtime/subscribe")
        event["requestContext"]["connectionId"] = connection
        event["requestContext"]["authorizer"] = principal
        event["body"] = body if isinstance(body, str) or body is None else json.dumps(body)
        result: dict[str, Any] = load_handler(f"realtime/{function}").lambda_handler(
            event, FakeContext()
        )
        return result

    return send


def pytest_configure() -> None:
    Path(ROOT / ".pytest_cache").mkdir(exist_ok=True)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 at its lowest cost: unit tests are about the flows, not the key derivation."""
    from argon2 import PasswordHasher
    from kumo.identity import passwords

    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", lambda: hasher)


@pytest.fixture
def authorize(
    aws: object,
    load_event: Callable[[str], dict[str, Any]],
) -> Callable[[dict[str, str]], dict[str, Any]]:
    """Run the authorizer on events/identity/authorizer_request.json with extra headers."""

    def run(headers: dict[str, str]) -> dict[str, Any]:
        event = load_event("identity/authorizer_request")
        event["headers"].update(headers)
        result: dict[str, Any] = load_handler("identity/authorizer").lambda_handler(
            event, FakeContext()
        )
        return result

    return run


# The start of an hour (2030-03-17T17:00:00Z): every window of every rate limit starts here, so
# a test frozen at it never straddles two windows.
T0 = 1_900_000_800.0


class Clock:
    """kumo.core.clock.now, at a moment the test sets."""

    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The clock, at T0 until the test moves it (`at.at = T0 + 10`)."""
    from kumo.core import clock

    frozen = Clock(T0)
    monkeypatch.setattr(clock, "now", frozen)
    return frozen
