"""Integration tests drive a real local stack over HTTP.

By default the session starts its own MiniStack on a free port with a throw-away state
folder, deploys the template with the SAM CLI, seeds it, and stops it at the end. Set
KUMO_ENDPOINTS=.local/endpoints.json to run against the stack `make up` started instead.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import paho.mqtt.client as mqtt
import pytest
import requests
from paho.mqtt.enums import CallbackAPIVersion

from infra.local import stack as local_stack

DEADLINE_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def endpoints() -> Iterator[dict[str, Any]]:
    existing = os.environ.get("KUMO_ENDPOINTS")
    if existing:
        yield json.loads(Path(existing).read_text())
        return
    state_dir = Path(tempfile.mkdtemp(prefix="kumo-it-"))
    stack = local_stack.Stack(port=_free_port(), state_dir=state_dir)
    try:
        yield local_stack.up(port=stack.port, state_dir=state_dir)
    finally:
        local_stack.stop_engine(stack)
        shutil.rmtree(state_dir, ignore_errors=True)


class Api:
    """A thin HTTP client for the deployed API: one requests session, base URL, JSON."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def call(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", path, **kwargs)


class Outbox:
    """The local engine's SES outbox: e-mails a test can wait for."""

    def __init__(self, url: str) -> None:
        self.url = url

    def messages_to(self, address: str) -> list[dict[str, Any]]:
        data = requests.get(self.url, timeout=10).json()["messages"]
        mails = [m for account in data.values() for m in account]
        return [m for m in mails if address in m["To"]]

    def wait_for(self, address: str, subject_part: str, *, count: int = 1) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            found = [m for m in self.messages_to(address) if subject_part in m["Subject"]]
            if len(found) >= count:
                return found[-1]
            time.sleep(0.25)
        raise AssertionError(f"no mail '{subject_part}' for {address} within {DEADLINE_SECONDS} s")

    @staticmethod
    def token(mail: dict[str, Any]) -> str:
        match = re.search(r"token=([A-Za-z0-9_\-]+)", mail["BodyText"])
        assert match, mail["BodyText"]
        return match.group(1)


@pytest.fixture(scope="session")
def aws(endpoints: dict[str, Any]) -> Callable[[str], Any]:
    """boto3 clients on the local engine, for what a test checks behind the API."""

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoints["gateway"],
            region_name=endpoints["region"],
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    return client


@pytest.fixture(scope="module")
def mqtt_client(endpoints: dict[str, Any]) -> Iterator[mqtt.Client]:
    """One MQTT connection for the module's publishes."""
    gateway = urlsplit(endpoints["gateway"])
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"it-{uuid.uuid4().hex[:8]}",
        transport="websockets",
        protocol=mqtt.MQTTv311,
    )
    # The engine serves MQTT over WebSocket on its main port for an IoT data host name.
    client.ws_set_options(
        path="/mqtt", headers={"Host": f"kumo.iot.{endpoints['region']}.localhost"}
    )
    client.connect(gateway.hostname or "127.0.0.1", gateway.port or 4566, keepalive=30)
    client.loop_start()
    yield client
    # An open MQTT connection would hold up the engine's shutdown.
    client.disconnect()
    client.loop_stop()


@pytest.fixture(scope="session")
def api(endpoints: dict[str, Any]) -> Api:
    return Api(endpoints["api"])


@pytest.fixture(scope="session")
def outbox(endpoints: dict[str, Any]) -> Outbox:
    return Outbox(endpoints["outbox"])


@pytest.fixture(scope="session")
def demo_admin(endpoints: dict[str, Any]) -> dict[str, str]:
    account: dict[str, str] = endpoints["demo"]["accounts"][0]
    assert account["role"] == "admin"
    return account


@pytest.fixture(scope="module")
def admin_token(api: Api, demo_admin: dict[str, str]) -> str:
    login = api.post(
        "/api/v1/auth/login",
        json={"email": demo_admin["email"], "password": demo_admin["password"]},
    )
    assert login.status_code == 200, login.text
    token: str = login.json()["access_token"]
    return token


def unique_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


PASSWORD = "correct horse 42"


def signed_up_user(
    api: Api, outbox: Outbox, prefix: str, password: str = PASSWORD
) -> dict[str, Any]:
    """Register, verify through the mailed token, and log in: the tokens and the profile."""
    email = unique_email(prefix)
    created = api.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "display_name": prefix}
    )
    assert created.status_code == 201, created.text
    token = Outbox.token(outbox.wait_for(email, "Confirm"))
    assert api.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 200
    login = api.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    return {"email": email, "password": password, "id": created.json()["id"], **login.json()}


# --- a stream recorder: a function of the tests' own that event source mappings can feed ------

RECORDER_ROLE_ARN = "arn:aws:iam::000000000000:role/kumo-stream-contract"
# Records one line per record it is given into a queue, then does what the first record's
# item says in its `mode` attribute: succeed, fail (raise), or report every record failed.
RECORDER = """
import json, os, boto3

def handler(event, context):
    sqs = boto3.client("sqs")
    records = event["Records"]
    for record in records:
        sqs.send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps({
            "event": record["eventName"],
            "pk": record["dynamodb"]["Keys"]["pk"]["S"],
            "identity": record.get("userIdentity"),
        }))
    change = records[0]["dynamodb"]
    image = change.get("NewImage") or change.get("OldImage") or {}
    mode = image.get("mode", {}).get("S", "ok")
    print("recorded", len(records), mode)
    if mode == "fail":
        raise RuntimeError("told to fail")
    if mode == "partial":
        return {"batchItemFailures": [
            {"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in records
        ]}
    return {"batchItemFailures": []}
"""


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def recorder(aws: Callable[[str], Any]) -> Iterator[dict[str, str]]:
    """A function that records what it is given into a queue of its own; its mappings, the
    function and the queue are deleted afterwards."""
    sqs, lam = aws("sqs"), aws("lambda")
    queue_url = sqs.create_queue(QueueName=unique_name("kumo-stream-recorder"))["QueueUrl"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("index.py", RECORDER)
    name = unique_name("kumo-stream-recorder")
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=RECORDER_ROLE_ARN,
        Handler="index.handler",
        Code={"ZipFile": code.getvalue()},
        Timeout=30,
        Environment={"Variables": {"QUEUE_URL": queue_url}},
    )
    yield {"function": name, "queue_url": queue_url}
    mappings = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    for mapping in mappings:
        with suppress(Exception):
            lam.delete_event_source_mapping(UUID=mapping["UUID"])
    with suppress(Exception):
        lam.delete_function(FunctionName=name)
    with suppress(Exception):
        sqs.delete_queue(QueueUrl=queue_url)


def recorded(
    aws: Callable[[str], Any], queue_url: str, *, at_least: int, seconds: float
) -> list[dict[str, Any]]:
    """What the recorder recorded since the last call, waiting up to `seconds` for
    `at_least` lines."""
    sqs = aws("sqs")
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for message in sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            lines.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if at_least and len(lines) >= at_least:
            break
    return lines
