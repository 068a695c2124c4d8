"""`make bench`, part 3: the scheduler tick with N due tasks, and webhook worker throughput.

    .venv/bin/python bench/webhooks.py [--tasks 1000] [--receiver-delay-ms 0] [--endpoints PATH]

Needs the local stack (`make up`). It writes N active scheduled tasks straight into the
tasks table, all due one minute ago and pointing at a receiver of its own on 127.0.0.1,
pauses the EventBridge rule so the real tick does not race it, and pauses the worker's queue
mapping so the two do not share the two cores. It invokes the scheduler function once and
times that invocation (every task queued and advanced), then resumes the worker and times
how fast it drains the N calls into the receiver. It removes what it wrote and re-enables
the rule and the mapping, also when it fails. Loopback only; bounded by N and a deadline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ENDPOINTS = ROOT / ".local" / "endpoints.json"
DEADLINE_SECONDS = 300.0


class BenchError(Exception):
    """The stack is missing or behaved other than the benchmark expects."""


def _configure(endpoints: dict[str, Any]) -> None:
    """Point boto3 and the kumo models at the local engine before they are imported."""
    gateway = endpoints["gateway"]
    if urlsplit(gateway).hostname not in ("127.0.0.1", "localhost"):
        raise BenchError(f"refusing a non-loopback engine: {gateway}")
    sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]
    from infra.environment import environment_for

    os.environ.update(
        AWS_ENDPOINT_URL=gateway,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",  # noqa: S106 (the local engine's dummy key)
        AWS_DEFAULT_REGION=endpoints["region"],
    )
    os.environ.update(
        environment_for(
            endpoints["stage"],
            account="000000000000",
            region=endpoints["region"],
            queue_base=f"{gateway}/000000000000",
            websocket_url=endpoints["websocket"].replace("ws://", "http://", 1),
            overrides={
                "MAIL_SENDER": "bench@kumo.local",
                "APP_URL": gateway,
                "POWERTOOLS_LOG_LEVEL": "WARNING",
            },
        )
    )


def _function_named(client: Any, directory: str) -> str:
    """The function deployed from functions/<context>/<directory> (kumo-<stage>-<directory>)."""
    paginator = client.get_paginator("list_functions")
    for page in paginator.paginate():
        for function in page["Functions"]:
            name = str(function["FunctionName"])
            if name.startswith("kumo-") and name.endswith(f"-{directory}"):
                return name
    raise BenchError(f"no deployed function {directory}; run `make up` first")


def _seed(count: int, receiver_base: str, owner: str) -> list[str]:
    from kumo.tasks.models import (
        ScheduledTaskModel,
        due_partition,
        due_shard,
        due_sort_key,
        owner_key,
        scheduled_key,
    )
    from kumo.tasks.scheduled_tasks import slot_text

    slot = slot_text(datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1))
    ids = [f"BENCH{uuid.uuid4().hex[:21].upper()}" for _ in range(count)]
    now = datetime.now(UTC).isoformat()
    with ScheduledTaskModel.batch_write() as batch:
        for task_id in ids:
            batch.save(
                ScheduledTaskModel(
                    scheduled_key(task_id),
                    "META",
                    task_id=task_id,
                    owner_id=owner,
                    name="bench",
                    schedule="0 0 1 1 *",
                    timezone="UTC",
                    url=f"{receiver_base}/bench/{task_id}",
                    method="POST",
                    body_json='{"bench":true}',
                    secret="whsec_bench",  # noqa: S106 (a throw-away receiver checks nothing)
                    created_at=now,
                    updated_at=now,
                    next_run_at=slot,
                    gsi1pk=owner_key(owner),
                    gsi1sk=scheduled_key(task_id),
                    gsi2pk=due_partition(due_shard(task_id)),
                    gsi2sk=due_sort_key(slot, task_id),
                )
            )
    return ids


def _clean(ids: list[str]) -> None:
    from kumo.tasks.models import RunModel, scheduled_key

    with RunModel.batch_write() as batch:
        for task_id in ids:
            for item in RunModel.query(scheduled_key(task_id)):
                batch.delete(item)


def run(tasks: int, receiver_delay_ms: int, endpoints_path: Path) -> None:
    if not endpoints_path.exists():
        raise BenchError(f"{endpoints_path} is missing; run `make up` first")
    endpoints = json.loads(endpoints_path.read_text())
    _configure(endpoints)

    import boto3

    from infra.local.receiver import Receiver

    lambda_client = boto3.client("lambda")
    events = boto3.client("events")
    scheduler = _function_named(lambda_client, "scheduler")
    rules = [r["Name"] for r in events.list_rules()["Rules"] if "SchedulerFunction" in r["Name"]]
    worker = _function_named(lambda_client, "webhook_worker")
    mappings = [
        m["UUID"]
        for m in lambda_client.list_event_source_mappings(FunctionName=worker)[
            "EventSourceMappings"
        ]
    ]
    receiver = Receiver(delay_seconds=receiver_delay_ms / 1000).start()
    ids: list[str] = []
    for rule in rules:
        events.disable_rule(Name=rule)
    for mapping in mappings:
        lambda_client.update_event_source_mapping(UUID=mapping, Enabled=False)
    try:
        ids = _seed(tasks, receiver.base, owner=f"bench-{uuid.uuid4().hex[:8]}")
        print(f"seeded {tasks} due tasks; invoking {scheduler}", flush=True)
        started = time.monotonic()
        answer = lambda_client.invoke(FunctionName=scheduler, Payload=b"{}")
        tick_seconds = time.monotonic() - started
        report = json.loads(answer["Payload"].read())
        if "queued" not in report:
            raise BenchError(f"the scheduler failed: {report}")
        print(
            f"scheduler tick: {report['due']} due, {report['queued']} queued, "
            f"{report['advanced']} advanced in {tick_seconds * 1000:.0f} ms "
            f"({report['queued'] / tick_seconds:.0f} tasks/s, one invocation)"
        )
        resumed, wall_start = time.monotonic(), time.time()
        for mapping in mappings:
            lambda_client.update_event_source_mapping(UUID=mapping, Enabled=True)
        while len(receiver.calls) < report["queued"]:
            if time.monotonic() > resumed + DEADLINE_SECONDS:
                raise BenchError(f"only {len(receiver.calls)} calls in {DEADLINE_SECONDS} s")
            time.sleep(0.05)
        last = max(c.received_at for c in receiver.calls)
        print(
            f"webhook worker: {len(receiver.calls)} queued calls delivered in "
            f"{last - wall_start:.1f} s ({len(receiver.calls) / (last - wall_start):.0f} calls/s, "
            f"receiver delay {receiver_delay_ms} ms)"
        )
    finally:
        receiver.stop()
        for rule in rules:
            events.enable_rule(Name=rule)
        for mapping in mappings:
            lambda_client.update_event_source_mapping(UUID=mapping, Enabled=True)
        if ids:
            _delete_tasks(ids)
            _clean(ids)


def _delete_tasks(ids: list[str]) -> None:
    from kumo.tasks.models import ScheduledTaskModel, scheduled_key

    with ScheduledTaskModel.batch_write() as batch:
        for task_id in ids:
            batch.delete(ScheduledTaskModel(scheduled_key(task_id), "META"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--receiver-delay-ms", type=int, default=0)
    parser.add_argument("--endpoints", type=Path, default=DEFAULT_ENDPOINTS)
    args = parser.parse_args()
    if not 1 <= args.tasks <= 10_000:
        parser.error("--tasks must be between 1 and 10000")
    try:
        run(args.tasks, args.receiver_delay_ms, args.endpoints)
    except BenchError as error:
        sys.exit(f"bench: {error}")


if __name__ == "__main__":
    main()
