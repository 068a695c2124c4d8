"""Domain events on Kumo's EventBridge bus: `<context>.<what happened>`, detail as JSON."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger

from kumo.core import clock
from kumo.core.config import get_settings

logger = Logger(child=True)


@cache
def _events() -> Any:
    import boto3

    return boto3.client("events")


def publish(*, source: str, detail_type: str, detail: dict[str, Any]) -> None:
    """Put one event; a refused entry raises, so the caller's retry covers it."""
    response = _events().put_events(
        Entries=[
            {
                "EventBusName": get_settings().event_bus_name,
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps({**detail, "emitted_at": clock.utc_iso()}),
            }
        ]
    )
    if response.get("FailedEntryCount"):
        raise RuntimeError(f"event {detail_type} refused: {response['Entries']}")
    logger.info("event published", detail_type=detail_type)
