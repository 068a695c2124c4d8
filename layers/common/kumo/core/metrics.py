"""Operations metrics: counters written as CloudWatch EMF lines, one line per invocation.

Services call `count(NAME, n)`; the handler wrappers (`kumo.core.api.http_handler`, and
`flushed` on the event handlers) print what was counted when the invocation ends, even when
it raises. Every metric is in the `Kumo` namespace with two dimensions only, `service` (from
POWERTOOLS_SERVICE_NAME) and `stage`: each distinct dimension set is a custom metric that
CloudWatch bills monthly, so org ids, device ids and routes go in the logs, never in here.

Cold start pays under a millisecond (this module): `aws_lambda_powertools` imports its metrics
module with the package (every function imports Logger), and the provider, which reads the
stage, is made at the first count, so a function that counts nothing never makes it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

from aws_lambda_powertools import Metrics

from kumo.core.config import get_settings

NAMESPACE = "Kumo"

# The catalogue: dashboards and alarms are built on these names.
READINGS_ACCEPTED = "ReadingsAccepted"  # stored, duplicates excluded (SQS and HTTP)
READINGS_DUPLICATE = "ReadingsDuplicate"  # redelivered readings that were already stored
READINGS_REJECTED = "ReadingsRejected"  # readings refused by validation
# Values refused because their instant (device, time, metric) holds another value (ADR 26)
READINGS_CONFLICTING = "ReadingsConflicting"
TELEMETRY_MESSAGES_DROPPED = "TelemetryMessagesDropped"  # unreadable, or an unknown device
DEVICES_ONLINE = "DevicesOnline"  # a gauge, once a minute from the offline job: use Maximum
DEVICES_MARKED_OFFLINE = "DevicesMarkedOffline"
COMMANDS_SENT = "CommandsSent"
COMMANDS_SUCCEEDED = "CommandsSucceeded"
COMMANDS_FAILED = "CommandsFailed"  # the device reported a failure
COMMANDS_EXPIRED = "CommandsExpired"  # when first read past expiry: nothing sweeps (commands.py)
WEBHOOKS_SUCCEEDED = "WebhooksSucceeded"
WEBHOOKS_RETRIED = "WebhooksRetried"  # an attempt failed and another is scheduled
WEBHOOKS_FAILED = "WebhooksFailed"  # refused for good, or out of attempts (dead-lettered)
MAILS_SENT = "MailsSent"

# The webhook worker counts from a thread pool; Powertools' metric set is a plain dict.
_lock = threading.Lock()
_metrics: Metrics | None = None


def _provider() -> Metrics:
    global _metrics
    if _metrics is None:
        metrics = Metrics(namespace=NAMESPACE)
        metrics.set_default_dimensions(stage=get_settings().stage)
        _metrics = metrics
    return _metrics


def count(name: str, value: float = 1) -> None:
    """Add `value` to the metric `name` for this invocation (CloudWatch sums the values)."""
    with _lock:
        _provider().add_metric(name=name, unit="Count", value=value)


def flush() -> None:
    """Print this invocation's metrics as one EMF line; nothing at all if nothing was counted
    (Powertools' own flush warns on every empty invocation)."""
    if _metrics is None:
        return
    with _lock:
        if _metrics.metric_set:
            _metrics.flush_metrics()
        # flush_metrics keeps the set when POWERTOOLS_METRICS_DISABLED is on: never carry
        # counts into the next invocation.
        _metrics.clear_metrics()


def flushed[**P, R](handler: Callable[P, R]) -> Callable[P, R]:
    """The decorator for a handler whose services count: flush when the invocation ends."""

    @functools.wraps(handler)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return handler(*args, **kwargs)
        finally:
            flush()

    return wrapper
