"""The adapter every WebSocket route handler uses: read the connection and principal from the
event, run the route, send its reply or its RFC 7807 problem back on the connection.

Replies go out through the management API rather than as the function's return value: API
Gateway only relays a return value on routes configured with a route response, and the local
engine relays it always; posting behaves the same on both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from kumo.core import request_body
from kumo.core.errors import KumoError, problem_for
from kumo.core.principal import Principal
from kumo.realtime import fanout

logger = Logger(child=True)

Route = Callable[[str, Principal, str | None], dict[str, Any] | None]
OK = {"statusCode": 200}


def _client_id(body: str | None) -> str | None:
    """The `id` the client put on its message, so it can match the error to the request."""
    try:
        value = request_body.decode_json(body or "").get("id")
    except (KumoError, AttributeError):
        return None
    return value if isinstance(value, str) and len(value) <= 64 else None


def handle(event: dict[str, Any], route: Route) -> dict[str, Any]:
    context = event.get("requestContext") or {}
    connection_id = str(context.get("connectionId", ""))
    body = event.get("body")
    try:
        principal = Principal.from_context(context.get("authorizer"))
        reply = route(connection_id, principal, body)
    except KumoError as error:
        logger.info("websocket message refused", status=error.status, detail=error.detail)
        reply = {
            "event": "error",
            "problem": problem_for(
                error, instance=context.get("routeKey"), request_id=context.get("requestId")
            ),
        }
        request_id = _client_id(body)
        if request_id is not None:
            reply["id"] = request_id
    if reply is not None:
        fanout.post(connection_id, reply)
    return OK
