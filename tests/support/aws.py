"""One moto account for a unit-test session: built once, handed to each test that asks for it
in the state it had when built.

Building the account (seven tables with their indexes, the queues, the bus, the SES identity)
costs far more than most tests do, so it is built on first use and restored before each test:
the tables from copies of the empty tables, every other service by moto's own reset, then the
queues, bus and identity again. Between tests moto is stopped, and a request that reaches AWS
anyway is refused and recorded, so a test that needs AWS but does not ask for it fails at once
instead of passing on what an earlier test left running.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from typing import Any

import boto3
import moto.dynamodb.models as moto_dynamodb
from botocore.handlers import BUILTIN_HANDLERS
from moto import mock_aws
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.base_backend import BackendDict
from moto.core.models import botocore_stubber
from moto.dynamodb.models import DynamoDBBackend, Table, dynamodb_backends

from tests.support.template import table_definitions

REGION = "us-east-1"
QUEUES = (
    "mail",
    "mail-dlq",
    "webhooks",
    "webhooks-dlq",
    "config-shadow",
    "fanout",
    "sketch-compaction",
)
# The signing key sets (ADR 0021), in the shape the template's GenerateSecretString writes;
# the same value every test, so a set cached by an earlier test is still the right one.
SIGNING_KEYS = {
    "jwt-keys": '{"current": "initial", "initial": "unit-test-jwt-key-that-is-long-enough-0123"}',
    "cursor-keys": '{"current": "initial", "initial": "unit-test-cursor-key-long-enough-456789"}',
}

# Requests that reached AWS while moto was stopped, since the last `take_stray_requests()`.
_stray_requests: list[str] = []


def _refuse_unmocked_request(request: Any, **_: Any) -> None:
    """botocore's last word before sending: moto answers first when it is running."""
    if not botocore_stubber.enabled:
        _stray_requests.append(request.url)
        raise RuntimeError(
            f"a unit test reached AWS ({request.url}) without asking for the `aws` fixture"
        )


# After moto's own handler, and before any session exists: sessions copy the list when made.
BUILTIN_HANDLERS.append(("before-send", _refuse_unmocked_request))


class _OneSnapshotPerTable:
    """Stands in for the `copy` module inside moto's DynamoDB backend.

    moto (5.2.1) keeps its rollback state for `TransactWriteItems` by deep-copying the table
    once per action, before any action runs: a 100-action transaction on a telemetry table of
    a few thousand items made 100 identical copies, which took one export test 90 s. Within
    one transaction the first copy of a table serves for all; rollback is unchanged."""

    def __init__(self) -> None:
        self._local = threading.local()

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        snapshots: dict[int, Table] | None = getattr(self._local, "snapshots", None)
        if snapshots is None or not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        if id(value) not in snapshots:
            snapshots[id(value)] = copy.deepcopy(value)
        return snapshots[id(value)]

    def during(self, transact: Any) -> Any:
        """`transact` (moto's method), with one copy per table for the call."""

        def transact_write_items(backend: DynamoDBBackend, items: list[dict[str, Any]]) -> None:
            self._local.snapshots = {}
            try:
                transact(backend, items)
            finally:
                self._local.snapshots = None

        return transact_write_items

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


_snapshots = _OneSnapshotPerTable()
moto_dynamodb.copy = _snapshots  # type: ignore[assignment]
DynamoDBBackend.transact_write_items = _snapshots.during(DynamoDBBackend.transact_write_items)  # type: ignore[method-assign]


def take_stray_requests() -> list[str]:
    """The URLs refused since the last call (a test may have swallowed the error)."""
    taken = list(_stray_requests)
    _stray_requests.clear()
    return taken


class MotoAccount:
    """The session's moto account: `start()` before a test, `stop()` after it."""

    def __init__(self, stage: str, event_bus: str, sender: str) -> None:
        self._stage = stage
        self._event_bus = event_bus
        self._sender = sender
        # The boto3 default session is kept across tests: a new one per test costs a new
        # service-model load for every client a test makes.
        self._mock = mock_aws(config={"core": {"reset_boto3_session": False}})
        self._mock.start()
        dynamodb = boto3.client("dynamodb")
        for definition in table_definitions(stage):
            dynamodb.create_table(**definition)
        self._empty_tables: dict[str, Table] = copy.deepcopy(self._dynamodb().tables)
        self._mock.stop(remove_data=False)
        self._sqs = boto3.client("sqs")
        self._events = boto3.client("events")
        self._ses = boto3.client("ses")
        self._secretsmanager = boto3.client("secretsmanager")

    def start(self) -> None:
        """Moto running, with the tables empty and everything else as first built."""
        self._restore()
        self._mock.start(reset=False)
        self._build_the_rest()

    def stop(self) -> None:
        self._mock.stop(remove_data=False)

    def close(self) -> None:
        BackendDict.reset()

    @staticmethod
    def _dynamodb() -> Any:
        return dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]

    def _restore(self) -> None:
        for backends in list(BackendDict._instances):
            if backends is not dynamodb_backends:
                for account in backends.values():
                    account.reset()
        for account_id, account in dynamodb_backends.items():
            for region, backend in account.items():
                if (account_id, region) != (DEFAULT_ACCOUNT_ID, REGION):
                    backend.reset()
        dynamodb = self._dynamodb()
        dynamodb.reset()
        dynamodb.tables.update(copy.deepcopy(self._empty_tables))

    def _build_the_rest(self) -> None:
        """What moto's reset takes away outside DynamoDB; cheap to build, so built again."""
        for queue in QUEUES:
            self._sqs.create_queue(QueueName=f"kumo-{self._stage}-{queue}")
        self._events.create_event_bus(Name=self._event_bus)
        self._ses.verify_email_identity(EmailAddress=self._sender)
        for name, value in SIGNING_KEYS.items():
            secret_name = f"kumo-{self._stage}-{name}"
            self._secretsmanager.create_secret(Name=secret_name, SecretString=value)


def bus_recorder(source: str, bus: str) -> Callable[[], list[dict[str, Any]]]:
    """Every event of `source` on the bus from now on, through a rule into a queue: call the
    answer for those received since the last call."""
    name = source.replace(".", "-")
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"{name}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    events = boto3.client("events")
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": [source]}))
    events.put_targets(
        Rule=name, EventBusName=bus, Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}]
    )

    def received() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in messages]

    return received


def posted_to(connection_id: str) -> list[dict[str, Any]]:
    """Every message posted to a WebSocket connection through moto's management API, in
    order (moto appends the frames back to back)."""
    backend = apigatewaymanagementapi_backends[DEFAULT_ACCOUNT_ID][REGION]
    raw = (
        backend.connections[connection_id].data.decode()
        if connection_id in backend.connections
        else ""
    )
    decoder, messages, index = json.JSONDecoder(), [], 0
    while index < len(raw):
        message, index = decoder.raw_decode(raw, index)
        messages.append(message)
    return messages
