"""`make bench`, part 4: telemetry through MQTT → IoT rule → SQS → ingestion, and its AWS cost.

    .venv/bin/python bench/telemetry.py [--devices 5] [--seconds 20] [--rate 200]
        [--batch 1 10] [--metrics 3] [--sample-every 20] [--drain-seconds 240]
        [--endpoints PATH]

Needs the local stack (`make up`). It signs in as the demo admin, finds or creates the org
"Kumo bench" and, once per message size K in --batch (1 reading a message, then 10), registers
D load devices and one probe device through the API. D+1 MQTT clients (WebSocket, QoS 1)
publish for S seconds at R readings/s in all, K readings a message; a reading holds M metrics
and `seq`, which numbers the device's readings so that each one can be found again. The probe
carries 1 in N of the readings and is the latency sample: a poller asks the readings API for it
every 100 ms, and a message's latency runs from its publish to the first answer that holds it.
A WebSocket client subscribed to the probe times the same messages from publish to push.
A second poller sums the devices' hourly rollup counts every second (readings stored); at the
end every device's raw readings are paged through to check each `seq` is there exactly once.

Then it counts what AWS would bill. From the run: messages and their sizes (IoT messages, rule
triggers and actions, SQS sends). From the ingestion function's log on the local engine (one
stream per invocation: its REPORT line and its "telemetry batch ingested" line): invocations,
messages per invocation, durations, write units; shown, not priced, because the engine ignores
the batching window (it hands over whatever is queued) and runs up to 5 batches at once on a
small machine. Priced instead: full batches of the mapping's BatchSize, with DynamoDB units
and durations from a replay of the same messages, in publish order, through
kumo.telemetry.ingest in this process, against throw-away copies of the tables on the local
engine, every DynamoDB call asking for its consumed capacity (the engine follows DynamoDB's
rules: 1 unit per started KB written, twice in a transaction, indexes included). The first
messages (at most 100) are replayed one per invocation, for the naive design's duration.
Prices and both designs are in bench/cost.py.

It deletes the devices it registered and the throw-away tables, also when it fails; the
readings stay until their TTL. Loopback only; bounded by --seconds, a cap of 200,000 readings
a pass and a deadline on every wait.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import requests
from paho.mqtt.enums import CallbackAPIVersion
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as connect_websocket

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cost import (  # noqa: E402 (the repository root goes on the path first)
    Cost,
    Operations,
    cost_per_million_readings,
    kumo_operations,
    naive_operations,
)
from bench.local import Api as LocalApi  # noqa: E402 (the repository root goes first)
from bench.local import BenchError, bench_org, require_loopback, sign_in  # noqa: E402

DEFAULT_ENDPOINTS = ROOT / ".local" / "endpoints.json"
TIMEOUT_SECONDS = 30
LATENCY_POLL_SECONDS = 0.1
COUNT_POLL_SECONDS = 1.0
MAX_READINGS = 200_000  # per pass: --seconds x --rate
MAX_PAGES = 10  # per latency poll
CONNECT_SECONDS = 15
# All stored later than this after the last publish: ingestion did not keep up with the rate.
BACKLOG_SECONDS = 5.0
INGEST_FUNCTION = "ingest_telemetry"  # deployed as kumo-<stage>-ingest_telemetry


# --- the API -------------------------------------------------------------------------------


class Api(LocalApi):
    def points(self, device_id: str, **params: Any) -> tuple[list[dict[str, Any]], str | None]:
        page = self.call("GET", f"/api/v1/devices/{device_id}/readings", 200, params=params)
        return page["items"], page.get("next_cursor")


# --- publishing ----------------------------------------------------------------------------


@dataclass(slots=True)
class Sent:
    """One published message."""

    device: int
    first_seq: int
    last_seq: int
    first_ts: int
    last_ts: int
    published_at: float  # wall clock, just before publish()
    topic: str
    payload: str
    info: mqtt.MQTTMessageInfo
    stored_at: float | None = None  # probe messages: first API answer that held it
    # ...and how long before that the previous answer (or the publish) was: the uncertainty.
    seen_within: float | None = None
    first_poll: bool = False  # seen by the first answer after its publish: latency is a bound
    pushed_at: float | None = None  # probe messages: pushed to the WebSocket subscriber

    @property
    def readings(self) -> int:
        return self.last_seq - self.first_seq + 1

    @property
    def wire_bytes(self) -> int:
        return len(self.topic.encode()) + len(self.payload.encode())


@dataclass(frozen=True, slots=True)
class Device:
    index: int
    id: str
    probe: bool
    rate: float  # readings per second


def connect(gateway: str, region: str, client_id: str) -> mqtt.Client:
    """As tests/integration/test_devices_telemetry.py: the engine serves MQTT over WebSocket
    on its main port for an IoT data host name."""
    url = urlsplit(gateway)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        transport="websockets",
        protocol=mqtt.MQTTv311,
    )
    client.ws_set_options(path="/mqtt", headers={"Host": f"kumo.iot.{region}.localhost"})
    client.max_inflight_messages_set(200)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect(url.hostname or "127.0.0.1", url.port or 4566, keepalive=30)
    client.loop_start()
    if not connected.wait(CONNECT_SECONDS):
        client.loop_stop()
        raise BenchError(f"MQTT client {client_id} not connected in {CONNECT_SECONDS} s")
    return client


def publish_loop(
    client: mqtt.Client,
    topic: str,
    device: Device,
    *,
    batch: int,
    metrics: int,
    started: float,
    started_wall: float,
    seconds: float,
    sent: list[Sent],
    stop: threading.Event,
) -> None:
    """Reading i is taken at started + i / rate; a message leaves with its K-th reading.
    Late (a slow publish), it catches up without skipping: the published rate is measured."""
    rng = random.Random(device.index)
    period = 1.0 / device.rate
    first = 0
    while not stop.is_set():
        last = first + batch - 1
        due = started + last * period
        if due >= started + seconds:
            return
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamps = [int((started_wall + seq * period) * 1000) for seq in range(first, last + 1)]
        readings = [
            {
                "ts": stamps[seq - first],
                "metrics": {
                    "seq": seq,
                    **{f"m{m}": round(rng.uniform(0, 100), 2) for m in range(metrics)},
                },
            }
            for seq in range(first, last + 1)
        ]
        payload = json.dumps(readings[0] if batch == 1 else {"readings": readings})
        published_at = time.time()
        info = client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise BenchError(f"publish on {topic} failed: {mqtt.error_string(info.rc)}")
        sent.append(
            Sent(
                device=device.index,
                first_seq=first,
                last_seq=last,
                first_ts=stamps[0],
                last_ts=stamps[-1],
                published_at=published_at,
                topic=topic,
                payload=payload,
                info=info,
            )
        )
        first = last + 1


# --- polling -------------------------------------------------------------------------------


def probe_latency(
    api: Api,
    probe: Device,
    sent: list[Sent],
    stop: threading.Event,
) -> None:
    """Every 100 ms, the probe's raw `seq` points between its oldest and newest message not
    yet seen; a message is stored when the answer holds its last reading."""
    previous = 0.0
    while not stop.is_set():
        cycle = time.monotonic()
        pending = [s for s in list(sent) if s.stored_at is None]
        if pending:
            seen: set[int] = set()
            cursor: str | None = None
            params: dict[str, Any] = {
                "metric": "seq",
                "resolution": "raw",
                "from": str(min(s.first_ts for s in pending)),
                "to": str(max(s.last_ts for s in pending)),
                "limit": 100,
            }
            for _ in range(MAX_PAGES):
                points, cursor = api.points(
                    probe.id, **params, **({"cursor": cursor} if cursor else {})
                )
                seen.update(int(p["value"]) for p in points)
                if not cursor:
                    break
            now = time.time()
            for sample in pending:
                if sample.last_seq in seen:
                    sample.stored_at = now
                    sample.seen_within = now - max(previous, sample.published_at)
                    sample.first_poll = previous < sample.published_at
            previous = now
        time.sleep(max(0.0, LATENCY_POLL_SECONDS - (time.monotonic() - cycle)))


def subscribe_live(url: str, token: str, device_id: str) -> ClientConnection:
    """A WebSocket client subscribed to the probe, as a dashboard would be."""
    require_loopback(url.replace("ws://", "http://", 1))
    socket = connect_websocket(
        url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=TIMEOUT_SECONDS
    )
    request = {"action": "subscribe", "channel": "device", "device_id": device_id, "id": "bench"}
    socket.send(json.dumps(request))
    reply = json.loads(socket.recv(timeout=TIMEOUT_SECONDS))
    if reply.get("event") != "subscribed":
        socket.close()
        raise BenchError(f"the WebSocket subscription failed: {reply}")
    return socket


def watch_pushes(socket: ClientConnection, sent: list[Sent], stop: threading.Event) -> None:
    """Stamp each probe message when the reading that ends it is pushed."""
    while not stop.is_set():
        try:
            frame = socket.recv(timeout=0.5)
        except TimeoutError:
            continue
        now = time.time()
        message = json.loads(frame)
        if message.get("event") != "readings":
            continue
        pushed = {int(r["metrics"]["seq"]) for r in message["readings"] if "seq" in r["metrics"]}
        for sample in list(sent):
            if sample.pushed_at is None and sample.last_seq in pushed:
                sample.pushed_at = now


def count_stored(
    api: Api,
    devices: list[Device],
    since_ms: int,
    counts: list[tuple[float, int]],
    stop: threading.Event,
) -> None:
    """Every second, the sum of the devices' hourly `seq` rollup counts: readings stored."""
    while not stop.is_set():
        cycle = time.monotonic()
        total = 0
        for device in devices:
            points, _ = api.points(
                device.id, metric="seq", resolution="1h", **{"from": str(since_ms)}, limit=100
            )
            total += sum(int(p["count"]) for p in points)
        counts.append((time.time(), total))
        time.sleep(max(0.0, COUNT_POLL_SECONDS - (time.monotonic() - cycle)))


@contextmanager
def running(target: Callable[..., None], *args: Any) -> Iterator[list[BaseException]]:
    """The target in a daemon thread until the block ends; its exception, if any, in the list."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def guarded() -> None:
        try:
            target(*args, stop)
        except BaseException as error:  # reported by the caller
            errors.append(error)

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        stop.set()
        thread.join(TIMEOUT_SECONDS)


# --- the ingestion function's log ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Invocation:
    messages: int
    accepted: int
    duplicates: int
    dropped: int
    write_units: float
    duration_ms: float
    cold: bool


def function_named(lambda_client: Any, directory: str) -> dict[str, Any]:
    """The function deployed from functions/<context>/<directory> (kumo-<stage>-<directory>)."""
    for page in lambda_client.get_paginator("list_functions").paginate():
        for function in page["Functions"]:
            name = str(function["FunctionName"])
            if name.startswith("kumo-") and name.endswith(f"-{directory}"):
                return dict(function)
    raise BenchError(f"no deployed function {directory}; run `make up` first")


def invocations(logs: Any, function_name: str, start_ms: int, end_ms: int) -> list[Invocation]:
    """One per log stream (the engine writes one stream per invocation): its REPORT duration
    and the counts of its "telemetry batch ingested" line. Streams without both are skipped."""
    streams: dict[str, dict[str, Any]] = defaultdict(dict)
    kwargs: dict[str, Any] = {
        "logGroupName": f"/aws/lambda/{function_name}",
        "startTime": start_ms,
        "endTime": end_ms,
    }
    for _ in range(10_000):
        page = logs.filter_log_events(**kwargs)
        for event in page["events"]:
            line, stream = event["message"], streams[event["logStreamName"]]
            if line.startswith("REPORT RequestId:"):
                duration = line.split("Billed Duration:")[1].split("ms")[0]
                stream["duration_ms"] = float(duration)
            elif '"telemetry batch ingested"' in line:
                stream["line"] = json.loads(line)
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    found = []
    for stream in streams.values():
        if "line" not in stream or "duration_ms" not in stream:
            continue
        line = stream["line"]
        found.append(
            Invocation(
                messages=int(line["messages"]),
                accepted=int(line["accepted"]),
                duplicates=int(line["duplicates"]),
                dropped=int(line["dropped"]),
                write_units=float(line["write_units"]),
                duration_ms=stream["duration_ms"],
                cold=bool(line.get("cold_start")),
            )
        )
    return found


# --- the in-process replay -----------------------------------------------------------------

_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})


@dataclass(slots=True)
class Meter:
    """Consumed capacity by (table, "read" | "write"), as the engine reports it. The engine
    reports none for BatchGetItem: that one is counted by DynamoDB's rules (per item, 1 unit
    per started 4 KB, a miss as 1, half of it all for an eventually consistent read)."""

    units: defaultdict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    estimated: Counter[str] = field(default_factory=Counter)  # calls counted, not reported
    unreported: Counter[str] = field(default_factory=Counter)  # calls not counted at all
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, operation: str, params: dict[str, Any], response: dict[str, Any]) -> None:
        kind = "write" if operation in _WRITES else "read"
        consumed = response.get("ConsumedCapacity")
        if consumed is None and operation == "BatchGetItem":
            self.estimated[operation] += 1
            for table, request in params["RequestItems"].items():
                items = response.get("Responses", {}).get(table, [])
                misses = len(request["Keys"]) - len(items)
                units = misses + sum(math.ceil(len(json.dumps(i)) / 4096) for i in items)
                self.units[(table, kind)] += units * (1 if request.get("ConsistentRead") else 0.5)
            return
        if consumed is None:
            self.unreported[operation] += 1
        for entry in consumed if isinstance(consumed, list) else [consumed]:
            if isinstance(entry, dict):
                self.units[(str(entry.get("TableName")), kind)] += entry.get("CapacityUnits", 0)


@contextmanager
def metered(meter: Meter) -> Iterator[None]:
    """Every DynamoDB call of this process asks for its consumed capacity and reports it to
    the meter, PynamoDB's included (it calls botocore's _make_api_call too)."""
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    client_class: Any = BaseClient  # _make_api_call is private: not in the stubs
    original = client_class._make_api_call

    def call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name != "dynamodb" or (
            operation not in _WRITES and operation not in _READS
        ):
            return original(client, operation, params)
        params = {**params, "ReturnConsumedCapacity": params.get("ReturnConsumedCapacity", "TOTAL")}
        try:
            response = original(client, operation, params)
        except ClientError as error:
            meter.errors[error.response.get("Error", {}).get("Code", "?")] += 1
            raise
        meter.add(operation, params, response)
        return response

    client_class._make_api_call = call
    try:
        yield
    finally:
        client_class._make_api_call = original


@dataclass(frozen=True, slots=True)
class ReplayResult:
    batch_size: int
    batches: int
    readings: int
    accepted: int
    units: dict[tuple[str, str], float]  # (table role, "read" | "write") -> units
    estimated_telemetry_writes: float  # store_batches' own estimate (DynamoDB's rules)
    store_read_units: float  # store_batches' own count (the estimate when none is reported)
    ms_per_batch: list[float]
    errors: dict[str, int]
    unreported: dict[str, int]

    def per_reading(self, role: str, kind: str) -> float:
        return self.units.get((role, kind), 0.0) / self.readings

    @property
    def write_units(self) -> float:
        return sum(units for (_, kind), units in self.units.items() if kind == "write")

    @property
    def read_units(self) -> float:
        return sum(units for (_, kind), units in self.units.items() if kind == "read")


class Replay:
    """kumo.telemetry.ingest in this process, on throw-away copies (same keys and indexes, no
    data but the run's device items) of every table the settings name, on the local engine:
    the shared tables are never read or written, and nothing is sent to the shared bus."""

    def __init__(self, endpoints: dict[str, Any]) -> None:
        self.stage = str(endpoints["stage"])
        self.tag = f"bench{uuid.uuid4().hex[:8]}"
        self.tables: dict[str, tuple[str, str]] = {}  # role -> (shared table, throw-away copy)
        self.created: list[str] = []
        queues = f"{endpoints['gateway']}/000000000000/kumo-{self.stage}"
        environment = {
            "KUMO_STAGE": self.stage,
            # Never reached: the copied devices are online already, so no status event.
            "EVENT_BUS_NAME": f"kumo-{self.stage}-{self.tag}-none",
            "MAIL_QUEUE_URL": f"{queues}-mail",
            "MAIL_DLQ_URL": f"{queues}-mail-dlq",
            "WEBHOOK_QUEUE_URL": f"{queues}-webhooks",
            "WEBHOOK_DLQ_URL": f"{queues}-webhooks-dlq",
            "CONFIG_SHADOW_QUEUE_URL": f"{queues}-config-shadow",
            "MAIL_SENDER": "bench@kumo.local",
            "CURSOR_KEY_SECRET_ID": f"kumo-{self.stage}-cursor-keys",
            "APP_URL": endpoints["gateway"],
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        for name in ("IDENTITY", "ORGS", "TASKS", "DEVICES", "TELEMETRY", "ALERTS", "CONNECTIONS"):
            environment[f"{name}_TABLE"] = self._copy_of(name)
        os.environ.update(environment)
        sys.path.insert(0, str(ROOT / "layers" / "common"))
        import boto3

        self.dynamodb = boto3.client("dynamodb")

    def _copy_of(self, name: str) -> str:
        """The throw-away copy of kumo-<stage>-<name> (the template's naming)."""
        role = name.lower().replace("_", "-")
        source = f"kumo-{self.stage}-{role}"
        self.tables[role] = (source, f"{source}-{self.tag}")
        return self.tables[role][1]

    def open(self) -> None:
        """Settle the settings first (table names are read once, at import); a variable the
        code needs that this script does not know gets a copy if it names a table, else a
        placeholder. Then create the copies."""
        from kumo.core.config import ConfigurationError, get_settings

        for _ in range(5):
            try:
                get_settings()
                break
            except ConfigurationError as error:
                for name in str(error).split(":", 1)[-1].replace(",", " ").split():
                    stem = name.removesuffix("_TABLE")
                    os.environ[name] = self._copy_of(stem) if stem != name else "bench-unset"
        else:
            raise BenchError("the settings still miss variables; see kumo/core/config.py")
        for source, copy in self.tables.values():
            try:
                table = self.dynamodb.describe_table(TableName=source)["Table"]
            except self.dynamodb.exceptions.ResourceNotFoundException:
                continue  # not deployed yet: a use fails loudly on the missing copy
            definition: dict[str, Any] = {
                "TableName": copy,
                "KeySchema": table["KeySchema"],
                "AttributeDefinitions": table["AttributeDefinitions"],
                "BillingMode": "PAY_PER_REQUEST",
            }
            indexes = [
                {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
                for index in table.get("GlobalSecondaryIndexes", [])
            ]
            if indexes:
                definition["GlobalSecondaryIndexes"] = indexes
            self.dynamodb.create_table(**definition)
            self.created.append(copy)

    def close(self) -> None:
        for name in self.created:
            self.dynamodb.delete_table(TableName=name)

    def copy_devices(self, device_ids: list[str]) -> None:
        """The run's device items, online (as after their first batch: the steady state)."""
        source, copy = self.tables["devices"]
        for device_id in device_ids:
            key = {"pk": {"S": f"DEVICE#{device_id}"}, "sk": {"S": "META"}}
            item = self.dynamodb.get_item(TableName=source, Key=key, ConsistentRead=True)
            if "Item" not in item:
                raise BenchError(f"device {device_id} is not in {source}")
            copied = dict(item["Item"])
            copied["status"] = {"S": "online"}
            self.dynamodb.put_item(TableName=copy, Item=copied)

    def run(self, bodies: list[str], readings: int, batch_size: int) -> ReplayResult:
        from kumo.telemetry import ingest, store

        reports: list[store.StoreReport] = []
        store_batches = store.store_batches

        def keep(batches: Any, **kwargs: Any) -> store.StoreReport:
            report = store_batches(batches, **kwargs)
            reports.append(report)
            return report

        meter = Meter()
        timings: list[float] = []
        accepted = 0
        store.store_batches = keep
        try:
            with metered(meter):
                for start in range(0, len(bodies), batch_size):
                    records = [
                        {"messageId": str(uuid.uuid4()), "body": body}
                        for body in bodies[start : start + batch_size]
                    ]
                    began = time.perf_counter()
                    accepted += ingest.ingest_records(records).accepted
                    timings.append((time.perf_counter() - began) * 1000)
        finally:
            store.store_batches = store_batches
        roles = {copy: role for role, (_, copy) in self.tables.items()}
        units: dict[tuple[str, str], float] = defaultdict(float)
        for (table, kind), value in meter.units.items():
            units[(roles.get(table, table), kind)] += value
        return ReplayResult(
            batch_size=batch_size,
            batches=len(timings),
            readings=readings,
            accepted=accepted,
            units=dict(units),
            estimated_telemetry_writes=sum(r.estimated_write_units for r in reports),
            store_read_units=sum(r.read_units for r in reports),
            ms_per_batch=timings,
            errors=dict(meter.errors),
            unreported=dict(meter.unreported),
        )


# --- one pass ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    devices: int
    seconds: float
    rate: float
    metrics: int
    sample_every: int
    drain_seconds: float


@dataclass(frozen=True, slots=True)
class PassResult:
    batch: int
    sent: list[Sent]
    devices: list[Device]
    bodies: list[str]  # what the rule enqueues, per message, in publish order
    kumo: Operations
    naive: Operations


def percentile(values: list[float], p: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def queued_body(sample: Sent, org_id: str, device_id: str, client_id: str) -> str:
    """The SQS body the topic rule makes: SELECT *, topic(2) AS org_id, topic(3) AS device_id,
    timestamp() AS received_at, clientid() AS client_id."""
    body = json.loads(sample.payload)
    body.update(
        org_id=org_id,
        device_id=device_id,
        received_at=int(sample.published_at * 1000),
        client_id=client_id,
    )
    return json.dumps(body, separators=(",", ":"))


def run_pass(
    api: Api,
    endpoints: dict[str, Any],
    org_id: str,
    batch: int,
    options: Options,
    replay: Replay,
    aws: dict[str, Any],
) -> PassResult:
    label = f"K={batch}"
    probe_rate = options.rate / options.sample_every
    load_rate = (options.rate - probe_rate) / options.devices
    devices: list[Device] = []
    clients: list[mqtt.Client] = []
    try:
        for index in range(options.devices + 1):
            is_probe = index == options.devices
            name = f"bench {label} probe" if is_probe else f"bench {label} load {index}"
            body = {"org_id": org_id, "name": name, "type": "sensor"}
            created = api.call("POST", "/api/v1/devices", 201, json=body)
            rate = probe_rate if is_probe else load_rate
            devices.append(Device(index, created["id"], is_probe, rate))
        client_ids = [f"bench-{d.id}" for d in devices]
        for client_id in client_ids:
            clients.append(connect(endpoints["gateway"], endpoints["region"], client_id))
        print(
            f"  {label}: {options.devices} load devices at {load_rate:.1f} readings/s and a "
            f"probe at {probe_rate:.1f}; publishing for {options.seconds:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        sent_by_device: list[list[Sent]] = [[] for _ in devices]
        started_wall = time.time()
        started = time.monotonic()
        since_ms = int(started_wall * 1000) - 3_600_000
        poll_api, count_api = Api(api.base, api.token), Api(api.base, api.token)
        counts: list[tuple[float, int]] = []
        publishers: list[threading.Thread] = []
        failures: list[BaseException] = []
        stop_publishing = threading.Event()

        def publisher(device: Device, client: mqtt.Client) -> None:
            try:
                publish_loop(
                    client,
                    f"kumo/{org_id}/{device.id}/telemetry",
                    device,
                    batch=batch,
                    metrics=options.metrics,
                    started=started,
                    started_wall=started_wall,
                    seconds=options.seconds,
                    sent=sent_by_device[device.index],
                    stop=stop_publishing,
                )
            except BaseException as error:  # reported below
                failures.append(error)
                stop_publishing.set()

        probe = devices[-1]
        live = subscribe_live(endpoints["websocket"], str(api.token), probe.id)
        with (
            running(probe_latency, poll_api, probe, sent_by_device[probe.index]) as latency_errors,
            running(count_stored, count_api, devices, since_ms, counts) as count_errors,
            running(watch_pushes, live, sent_by_device[probe.index]) as push_errors,
        ):
            for device, client in zip(devices, clients, strict=True):
                thread = threading.Thread(target=publisher, args=(device, client), daemon=True)
                thread.start()
                publishers.append(thread)
            for thread in publishers:
                thread.join(options.seconds + TIMEOUT_SECONDS)
            if failures:
                raise BenchError(f"a publisher failed: {failures[0]}")
            sent = sorted(
                (s for device_sent in sent_by_device for s in device_sent),
                key=lambda s: s.published_at,
            )
            published = sum(s.readings for s in sent)
            publish_end = sent[-1].published_at
            ack_deadline = time.monotonic() + TIMEOUT_SECONDS
            for sample in sent:
                sample.info.wait_for_publish(max(0.1, ack_deadline - time.monotonic()))
            acked = sum(1 for s in sent if s.info.is_published())
            deadline = time.monotonic() + options.drain_seconds
            while time.monotonic() < deadline:
                if latency_errors or count_errors or push_errors:
                    failed = (latency_errors or count_errors or push_errors)[0]
                    raise BenchError(f"a poller failed: {failed}")
                probes_done = all(s.stored_at is not None for s in sent_by_device[probe.index])
                if counts and counts[-1][1] >= published and probes_done:
                    break
                time.sleep(0.2)
        live.close()
        for client in clients:
            client.disconnect()
            client.loop_stop()
        clients = []
        poll_api.close()
        count_api.close()

        # --- throughput and latency
        first_publish = sent[0].published_at
        publish_seconds = publish_end - first_publish
        stored_final = counts[-1][1] if counts else 0
        all_stored_at = next((t for t, n in counts if n >= published), None)
        at_publish_end = max((n for t, n in counts if t <= publish_end), default=0)
        samples = sent_by_device[probe.index]
        latencies = [
            (s.stored_at - s.published_at) * 1000 for s in samples if s.stored_at is not None
        ]
        within = [s.seen_within * 1000 for s in samples if s.seen_within is not None]
        print(f"\npass {label}: {batch} reading{'s' if batch > 1 else ''} a message")
        print(
            f"  published  {published} readings in {len(sent)} messages over "
            f"{publish_seconds:.1f} s: {published / publish_seconds:.1f} readings/s, "
            f"{len(sent) / publish_seconds:.1f} messages/s ({acked} of {len(sent)} PUBACKed)"
        )
        if all_stored_at is None:
            print(
                f"  stored     {stored_final} of {published} within {options.drain_seconds:.0f} s"
                f" of the last publish (NOT all)"
            )
        else:
            print(
                f"  stored     {published} readings: {at_publish_end} by the last publish, all "
                f"{all_stored_at - publish_end:.1f} s after it: "
                f"{published / (all_stored_at - first_publish):.1f} readings/s from the first "
                f"publish to all stored (counts polled every {COUNT_POLL_SECONDS:.0f} s)"
            )
        backlogged = [(t, n) for t, n in counts if n > 0] or [(first_publish, 0)]
        last = next(((t, n) for t, n in counts if n >= published), counts[-1] if counts else None)
        lagging = all_stored_at is None or all_stored_at - publish_end > BACKLOG_SECONDS
        if last and last[0] > backlogged[0][0] and lagging:
            drain = (last[1] - backlogged[0][1]) / (last[0] - backlogged[0][0])
            print(
                f"  backlog    ingestion did not keep up: it stored {drain:.1f} readings/s "
                f"from its first to its last stored reading (the local ceiling at this K); "
                f"latency below is mostly time in the queue"
            )
        verified = verify(api, devices, sent_by_device)
        print(f"  verified   {verified}")
        if latencies:
            print(
                f"  latency    publish -> readable through the API, {len(latencies)} of "
                f"{len(samples)} probe messages: p50 {percentile(latencies, 50):.0f} ms, "
                f"p95 {percentile(latencies, 95):.0f} ms, max {max(latencies):.0f} ms "
                f"(each is the first answer holding it; the answer before, or the publish, came "
                f"a median {statistics.median(within):.0f} ms earlier; "
                f"{sum(s.first_poll for s in samples)} were readable at the first answer after "
                f"their publish)"
            )
        else:
            print("  latency    no probe message was seen")
        pushes = [(s.pushed_at - s.published_at) * 1000 for s in samples if s.pushed_at]
        if pushes:
            print(
                f"  live       publish -> WebSocket subscriber, {len(pushes)} of {len(samples)} "
                f"probe messages: p50 {percentile(pushes, 50):.0f} ms, "
                f"p95 {percentile(pushes, 95):.0f} ms, max {max(pushes):.0f} ms"
            )
        else:
            print("  live       no probe message was pushed to the WebSocket subscriber")

        # --- what the deployed function did, from its log
        end_ms = int(time.time() * 1000) + 1000
        function = function_named(aws["lambda"], INGEST_FUNCTION)
        if function["FunctionName"] != aws["function"]["FunctionName"]:
            raise BenchError("the stack was redeployed during the run: run the benchmark again")
        time.sleep(1.0)  # the last invocation's log lines
        calls = invocations(
            aws["logs"], function["FunctionName"], int(first_publish * 1000) - 1000, end_ms
        )
        if not calls:
            raise BenchError(f"no invocation of {function['FunctionName']} in its log")
        logged_messages = sum(c.messages for c in calls)
        logged_units = sum(c.write_units for c in calls)
        durations = [c.duration_ms for c in calls]
        print(
            f"  function   {len(calls)} invocations for {logged_messages} messages "
            f"({logged_messages / len(calls):.1f} a batch, largest "
            f"{max(c.messages for c in calls)}), {sum(c.cold for c in calls)} cold; duration "
            f"p50 {percentile(durations, 50):.0f} ms, p95 {percentile(durations, 95):.0f} ms "
            f"({sum(durations) / 1000:.1f} s in all, up to 5 at once on this machine's "
            f"{os.cpu_count()} CPUs); {logged_units:.0f} telemetry write units logged "
            f"({logged_units / max(1, published):.2f} a reading); duplicates: "
            f"{sum(c.duplicates for c in calls)}"
        )
        if logged_messages != len(sent) or sum(c.accepted for c in calls) != published:
            print(
                f"  WARNING    the log window holds {logged_messages} messages and "
                f"{sum(c.accepted for c in calls)} accepted readings, this pass published "
                f"{len(sent)} and {published}: other traffic (or a redelivery) is in the "
                f"function line above"
            )

        # --- the replay: a few messages one at a time, then the rest in full batches
        batch_size = int(aws["batch_size"])
        client_of = dict(zip((d.index for d in devices), client_ids, strict=True))
        bodies = [queued_body(s, org_id, devices[s.device].id, client_of[s.device]) for s in sent]
        replay.copy_devices([d.id for d in devices])
        split = min(100, len(sent) // 5)
        readings_before = sum(s.readings for s in sent[:split])
        single = replay.run(bodies[:split], readings_before, 1)
        full = replay.run(bodies[split:], published - readings_before, batch_size)
        if single.accepted + full.accepted != published:
            raise BenchError(
                f"the replay stored {single.accepted + full.accepted} of {published} readings"
            )
        for result in (single, full):
            print(
                f"  replay     {result.batches} batches of {result.batch_size}: "
                f"{statistics.median(result.ms_per_batch):.1f} ms a batch (median); a reading "
                f"costs {result.per_reading('telemetry', 'write'):.2f} write + "
                f"{result.per_reading('telemetry', 'read'):.2f} read units on telemetry "
                f"(store_batches counts "
                f"{result.estimated_telemetry_writes / result.readings:.2f} + "
                f"{result.store_read_units / result.readings:.2f}), "
                f"{result.per_reading('devices', 'write'):.2f} write + "
                f"{result.per_reading('devices', 'read'):.2f} read on devices"
                + "".join(
                    f", {result.per_reading(role, kind):.2f} {kind} on {role}"
                    for role, kind in sorted(result.units)
                    if role not in ("telemetry", "devices")
                )
                + (f"; errors {result.errors}" if result.errors else "")
                + (f"; capacity not reported {result.unreported}" if result.unreported else "")
            )

        # --- operations at AWS
        memory = int(aws["function"]["MemorySize"])
        per_reading = published / full.readings
        kumo = kumo_operations(
            readings=published,
            message_bytes=[s.wire_bytes for s in sent],
            queued_bytes=[len(b.encode()) for b in bodies],
            batch_size=batch_size,
            invocation_ms=statistics.median(full.ms_per_batch),
            memory_mb=memory,
            write_units=full.write_units * per_reading,
            read_units=full.read_units * per_reading,
        )
        naive = naive_operations(
            readings=published,
            metrics_per_reading=options.metrics + 1,
            # The smallest message of the pass: one reading at K=1; under 5 KB either way.
            message_bytes=min(s.wire_bytes for s in sent),
            invocation_ms=statistics.median(single.ms_per_batch),
            memory_mb=memory,
        )
        return PassResult(batch, sent, devices, bodies, kumo, naive)
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()
        for device in devices:
            api.call("DELETE", f"/api/v1/devices/{device.id}", 204)


def verify(api: Api, devices: list[Device], sent_by_device: list[list[Sent]]) -> str:
    """Every device's raw `seq` points over the pass: each reading exactly once."""
    missing = duplicates = extra = 0
    for device in devices:
        sent = sent_by_device[device.index]
        if not sent:
            continue
        expected = set(range(sent[-1].last_seq + 1))
        values: list[int] = []
        cursor: str | None = None
        params = {
            "metric": "seq",
            "resolution": "raw",
            "from": str(sent[0].first_ts),
            "to": str(sent[-1].last_ts),
            "limit": 100,
        }
        for _ in range(len(expected) // 50 + len(sent) // 50 + 10):
            points, cursor = api.points(
                device.id, **params, **({"cursor": cursor} if cursor else {})
            )
            values.extend(int(p["value"]) for p in points)
            if not cursor:
                break
        found = set(values)
        missing += len(expected - found)
        extra += len(found - expected)
        duplicates += len(values) - len(found)
    total = sum(s.readings for device_sent in sent_by_device for s in device_sent)
    verdict = "every reading once" if not (missing or duplicates or extra) else "MISMATCH"
    return (
        f"{verdict} by its seq through the raw readings API: {total} published, "
        f"{missing} missing, {duplicates} duplicated, {extra} unexpected"
    )


# --- the cost table ------------------------------------------------------------------------


def report_cost(results: list[PassResult], metrics: int) -> None:
    columns: list[tuple[str, Operations]] = [("naive", results[0].naive)]
    columns += [(f"Kumo K={r.batch}", r.kumo) for r in results]
    lines: list[tuple[str, str, Callable[[Cost], float]]] = [
        ("IoT Core messages", "iot_messages", lambda c: c.iot_messaging),
        ("rules triggered + actions", "rule_actions", lambda c: c.iot_rules),
        ("SQS requests", "sqs_requests", lambda c: c.sqs),
        ("Lambda invocations", "lambda_invocations", lambda c: c.lambda_requests),
        ("Lambda GB-seconds", "lambda_gb_seconds", lambda c: c.lambda_compute),
        ("DynamoDB write units", "dynamodb_write_units", lambda c: c.dynamodb_writes),
        ("DynamoDB read units", "dynamodb_read_units", lambda c: c.dynamodb_reads),
    ]
    costs = [
        (name, ops.per_million_readings(), cost_per_million_readings(ops)) for name, ops in columns
    ]
    print(
        f"\nAWS cost per million readings ({metrics} metrics + seq a reading), us-east-1 list "
        "prices (bench/cost.py); operations per million readings, then USD"
    )
    width = 26
    print(f"  {'':<{width}}" + "".join(f"  {name:>20}" for name, _, _ in costs))
    for label, count_field, dollars in lines:
        cells = []
        for _, counts, cost in costs:
            count = counts[count_field]
            if count_field == "rule_actions":
                count += counts["rules_triggered"]
            cells.append(f"{_si(count):>8} {'$' + format(dollars(cost), '.4f'):>9}")
        print(f"  {label:<{width}}" + "".join(f"  {cell:>20}" for cell in cells))
    print(
        f"  {'total':<{width}}"
        + "".join(f"  {'$' + format(c.total, '.4f'):>20}" for _, _, c in costs)
    )
    notes = (
        "naive: one reading a message, one Lambda invocation a reading (send, receive and "
        "delete each), one PutItem a reading plus one UpdateItem a metric for each of the 1m, "
        "1h and 1d rollups, all under 1 KB (1 write unit each); no reads, no device check, no "
        "last-seen, latest or min/max writes, no exactly-once; an invocation lasts as long as "
        "the replay's median batch of 1 message. Kumo: full batches of the mapping's "
        "BatchSize; DynamoDB units and invocation duration from the replay (all tables). Left "
        "out: IoT connectivity (per device-minute), CloudWatch Logs, storage, the pollers' "
        "empty receives, free tiers."
    )
    print(textwrap.fill(notes, width=98, initial_indent="  ", subsequent_indent="  "))


def _si(value: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.1f}"


# --- main ----------------------------------------------------------------------------------


def run(options: Options, batches: list[int], endpoints_path: Path) -> None:
    if not endpoints_path.exists():
        raise BenchError(f"{endpoints_path} not found: run `make up` first")
    endpoints = json.loads(endpoints_path.read_text())
    base = str(endpoints["api"]).rstrip("/")
    for url in (base, endpoints["gateway"]):
        require_loopback(url)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoints["gateway"],
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",  # noqa: S106 (the local engine's dummy key)
        AWS_DEFAULT_REGION=endpoints["region"],
    )
    import boto3

    lambda_client = boto3.client("lambda")
    function = function_named(lambda_client, INGEST_FUNCTION)
    mappings = lambda_client.list_event_source_mappings(FunctionName=function["FunctionName"])
    batch_size = next(
        (
            m["BatchSize"]
            for m in mappings["EventSourceMappings"]
            if "telemetry" in m["EventSourceArn"]
        ),
        None,
    )
    if batch_size is None:
        raise BenchError(f"{function['FunctionName']} has no telemetry queue mapping")
    aws = {
        "lambda": lambda_client,
        "logs": boto3.client("logs"),
        "function": function,
        "batch_size": batch_size,
    }
    api = Api(base)
    api.token = sign_in(api, endpoints)
    org_id = bench_org(api)
    print(
        f"Telemetry through the local stack at {endpoints['gateway']}: MQTT over WebSocket -> "
        f"IoT rule -> SQS -> {function['FunctionName']} ({function['MemorySize']} MB, "
        f"BatchSize {batch_size})",
        file=sys.stderr,
        flush=True,
    )
    replay = Replay(endpoints)
    results: list[PassResult] = []
    try:
        replay.open()
        for batch in batches:
            results.append(run_pass(api, endpoints, org_id, batch, options, replay, aws))
    finally:
        replay.close()
        api.close()
    print(
        f"\n{options.devices} load devices + 1 probe, {options.seconds:.0f} s at "
        f"{options.rate:.0f} readings/s, {options.metrics} metrics + seq a reading; local-engine "
        "figures: compare versions of the code with them, do not predict AWS latency from them"
    )
    report_cost(results, options.metrics)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/telemetry.py", description=__doc__)
    parser.add_argument("--devices", type=int, default=5, help="load devices (plus one probe)")
    parser.add_argument("--seconds", type=float, default=20, help="publishing time per pass")
    parser.add_argument("--rate", type=float, default=200, help="readings per second in all")
    parser.add_argument(
        "--batch", type=int, nargs="+", default=[1, 10], help="readings a message, one pass each"
    )
    parser.add_argument("--metrics", type=int, default=3, help="metrics a reading, besides seq")
    parser.add_argument(
        "--sample-every", type=int, default=20, help="the probe carries 1 in N of the readings"
    )
    parser.add_argument("--drain-seconds", type=float, default=240, help="wait for storage")
    parser.add_argument("--endpoints", type=Path, default=DEFAULT_ENDPOINTS)
    args = parser.parse_args(argv)
    if not 1 <= args.devices <= 50:
        parser.error("--devices must be between 1 and 50")
    if not 1 <= args.seconds <= 300 or not 1 <= args.rate <= 2000:
        parser.error("--seconds must be between 1 and 300, --rate between 1 and 2000")
    if args.seconds * args.rate > MAX_READINGS:
        parser.error(f"--seconds x --rate must be at most {MAX_READINGS}")
    if any(not 1 <= k <= 500 for k in args.batch) or not 1 <= args.metrics <= 31:
        parser.error("--batch values must be between 1 and 500, --metrics between 1 and 31")
    if not 2 <= args.sample_every <= 1000 or not 1 <= args.drain_seconds <= 600:
        parser.error("--sample-every must be between 2 and 1000, --drain-seconds 1 to 600")
    options = Options(
        devices=args.devices,
        seconds=args.seconds,
        rate=args.rate,
        metrics=args.metrics,
        sample_every=args.sample_every,
        drain_seconds=args.drain_seconds,
    )
    try:
        run(options, args.batch, args.endpoints)
    except (BenchError, requests.RequestException) as error:
        print(f"telemetry: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
