"""What goes out when an alert opens or resolves: `alert.triggered` / `alert.resolved` on the
bus, e-mails through the tasks context, and the org's WebSocket `alerts` subscribers.

Loaded only when an alert changes state, so ingestion's cold start does not pay for the
tasks, orgs and devices services it calls.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger

from kumo.alerts.models import AlertModel, AlertRuleModel
from kumo.core import events
from kumo.core.config import get_settings
from kumo.core.errors import NotFound
from kumo.devices import service as devices
from kumo.orgs import service as orgs
from kumo.realtime import fanout
from kumo.tasks.service import enqueue_email

logger = Logger(child=True)

SOURCE = "kumo.alerts"
TRIGGERED = "alert.triggered"
RESOLVED = "alert.resolved"
# Who the "members" e-mail channel reaches.
MEMBER_ROLES = frozenset({"owner", "admin"})
SYMBOLS = {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "eq": "=", "neq": "≠"}


def number(value: float) -> float | int:
    """30.0 reads as 30 in a mail and an event; fractions stay as they are."""
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)


def announce_triggered(alert: AlertModel, rule: AlertRuleModel) -> None:
    """The event, then every channel of the rule. Raises if any of them fails: the caller
    leaves the alert un-notified, and a later evaluation sends it again."""
    events.publish(source=SOURCE, detail_type=TRIGGERED, detail=_triggered_detail(alert))
    channels: dict[str, Any] = json.loads(rule.channels_json)
    addresses = _recipients(alert.org_id, channels.get("email"))
    if addresses:
        params = _mail_params(alert)
        for address in addresses:
            enqueue_email(
                to=address,
                template="alert_notification",
                params={**params, "display_name": address},
            )
    if channels.get("websocket"):
        notify_websocket(alert)
    logger.info("alert announced", alert_id=alert.alert_id, emails=len(addresses))


def announce_resolved(
    *,
    org_id: str,
    alert_id: str,
    rule_id: str,
    device_id: str,
    value: float | None,
    reason: str,
    resolved_at: str,
) -> None:
    detail = {
        "alert_id": alert_id,
        "org_id": org_id,
        "device_id": device_id,
        "rule_id": rule_id,
        "resolved_value": None if value is None else number(value),
        "reason": reason,
        "resolved_at": resolved_at,
    }
    events.publish(source=SOURCE, detail_type=RESOLVED, detail=detail)
    # Resolutions reach every alerts subscriber, whatever the rule's channels, so a live list
    # of open alerts loaded over HTTP can drop them.
    fanout.publish_alert(org_id, {"state": "resolved", **detail})


def _triggered_detail(alert: AlertModel) -> dict[str, Any]:
    """What `alert.triggered` and the WebSocket push say about an alert that opened."""
    return {
        "alert_id": alert.alert_id,
        "org_id": alert.org_id,
        "device_id": alert.device_id,
        "rule_id": alert.rule_id,
        "metric": alert.metric,
        "comparison": alert.comparison,
        "value": number(alert.value),
        "threshold": number(alert.threshold),
        "severity": alert.severity,
        "triggered_at": alert.triggered_at,
        "opened_at": alert.opened_at,
    }


def notify_websocket(alert: AlertModel) -> None:
    """The rule's WebSocket channel: the org's `alerts` subscribers get the alert at once."""
    fanout.publish_alert(alert.org_id, {"state": "open", **_triggered_detail(alert)})


def _recipients(org_id: str, email: object) -> list[str]:
    if email == "members":
        return orgs.member_addresses(org_id, MEMBER_ROLES)
    if isinstance(email, list):
        return [str(address) for address in email]
    return []


def _mail_params(alert: AlertModel) -> dict[str, object]:
    params: dict[str, object] = {
        "device_name": _device_name(alert.device_id),
        "metric": alert.metric,
        "value": number(alert.value),
        "comparison": SYMBOLS[alert.comparison],
        "threshold": number(alert.threshold),
        "severity": alert.severity,
        "triggered_at": alert.triggered_at,
        "link": f"{get_settings().app_url}/alerts/{alert.alert_id}",
    }
    name = orgs.org_name(alert.org_id)
    if name:
        params["org_name"] = name
    return params


def _device_name(device_id: str) -> str:
    try:
        return str(devices.get_own_device(device_id).name)
    except NotFound:
        # Deleted since its reading was stored: the id still tells the reader which one.
        return device_id
