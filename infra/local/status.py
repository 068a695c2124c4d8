"""What `make status` prints about a running local stack: its stacks, dead letters, alarms, and
the operations metrics of the last hour (docs/operations.md says what each means).

The engine keeps each function's log group but does not turn the EMF lines that
kumo.core.metrics prints into CloudWatch metrics, so the metrics are summed from the logs here,
as CloudWatch would have summed them.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

Client = Callable[[str], Any]


def stacks(client: Client) -> Iterator[str]:
    summaries = client("cloudformation").list_stacks()["StackSummaries"]
    for summary in sorted(summaries, key=lambda s: str(s["StackName"])):
        name = str(summary["StackName"])
        if summary["StackStatus"] == "DELETE_COMPLETE":
            continue
        if name == "kumo" or name.startswith("kumo-"):
            yield f"stack {name:40} {summary['StackStatus']}"


def dead_letters(client: Client, stage: str) -> Iterator[str]:
    sqs = client("sqs")
    for url in sqs.list_queues(QueueNamePrefix=f"kumo-{stage}-").get("QueueUrls", []):
        if not url.endswith("-dlq"):
            continue
        waiting = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        yield f"dead letters {url.rsplit('/', 1)[-1]:40} {waiting}"


def alarms(client: Client, stage: str) -> Iterator[str]:
    pages = client("cloudwatch").get_paginator("describe_alarms")
    found = [
        alarm
        for page in pages.paginate(AlarmNamePrefix=f"kumo-{stage}-")
        for alarm in page["MetricAlarms"]
    ]  # one per function and dead-letter queue: more than a page
    states = Counter(str(alarm["StateValue"]) for alarm in found)
    yield "alarms " + (", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none")
    for alarm in found:
        if alarm["StateValue"] == "ALARM":
            yield f"  ALARM {alarm['AlarmName']}"


def metrics(client: Client, stage: str, *, hours: float = 1) -> Iterator[str]:
    logs = client("logs")
    since = int((time.time() - hours * 3600) * 1000)
    totals: Counter[str] = Counter()
    groups = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/kumo-{stage}-")
    for group in groups.get("logGroups", []):
        events = logs.filter_log_events(logGroupName=group["logGroupName"], startTime=since)
        for event in events.get("events", []):
            totals.update(_emf_values(str(event.get("message", ""))))
    yield f"metrics (namespace Kumo, last {hours:g} h): " + (
        ", ".join(f"{name} {value:g}" for name, value in sorted(totals.items())) or "none yet"
    )


def _emf_values(line: str) -> dict[str, float]:
    start = line.find('{"_aws"')
    if start < 0:
        return {}
    try:
        record: dict[str, Any] = json.loads(line[start:])
    except ValueError:
        return {}
    names = [
        str(metric["Name"])
        for directive in record["_aws"].get("CloudWatchMetrics", [])
        for metric in directive.get("Metrics", [])
    ]
    values: dict[str, float] = {}
    for name in names:
        value = record.get(name)
        # A metric counted more than once in an invocation is a list of its values.
        values[name] = float(sum(value) if isinstance(value, list) else value or 0)
    return values


def report(client: Client, stage: str) -> list[str]:
    return [
        *stacks(client),
        *dead_letters(client, stage),
        *alarms(client, stage),
        *metrics(client, stage),
    ]
