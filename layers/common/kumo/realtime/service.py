"""The WebSocket API: connections, subscriptions and the replies to client messages.

A connection belongs to the user the `$connect` authorizer admitted (devices are refused
there). Subscribing to a device needs the viewer role in the device's org, to an org's alerts
or device status the viewer role in that org; a stranger gets the same 404 as over HTTP.
Membership is checked when subscribing: a member removed later keeps the stream until the
connection ends (at most two hours), as a loaded dashboard would keep its data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ValidationError
from pynamodb.exceptions import DoesNotExist

from kumo.core import clock, request_body
from kumo.core.config import get_settings
from kumo.core.dynamo import transaction
from kumo.core.errors import (
    BadRequest,
    Gone,
    KumoError,
    MalformedJson,
    NotFound,
    ValidationFailed,
    field_errors,
)
from kumo.core.principal import Principal
from kumo.realtime.connections import remove_connection
from kumo.realtime.errors import SubscriptionLimitReached
from kumo.realtime.models import (
    CONNECTION_TTL_SECONDS,
    META,
    ChannelMemberModel,
    ConnectionModel,
    channel_key,
    chat_channel,
    connection_key,
    device_channel,
    org_channel,
    sketch_channel,
    subscription_sort_key,
    user_channel,
)
from kumo.realtime.schemas import PingMessage, SubscriptionMessage

logger = Logger(child=True)


def connect(connection_id: str, principal: Principal) -> None:
    """Remember who holds the connection (users only: a device key is refused here)."""
    now = clock.now()
    ConnectionModel(
        connection_key(connection_id),
        META,
        user_id=principal.user_id,
        connected_at=clock.utc_iso(now),
        subscriptions=0,
        expires_at=int(now) + CONNECTION_TTL_SECONDS,
    ).save()
    logger.info("websocket connected", connection_id=connection_id, user_id=principal.user_id)


def disconnect(connection_id: str) -> None:
    removed = remove_connection(connection_id)
    logger.info("websocket disconnected", connection_id=connection_id, items=removed)


def parse[M: BaseModel](body: str | None, model: type[M]) -> M:
    """The client's JSON message as `model`: a 400 when it is not JSON (or nests too deep, as
    over HTTP), a 422 naming the fields at fault."""
    data = request_body.decode_json(body or "")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        errors = field_errors(error.errors(include_url=False), whole="body")
        raise ValidationFailed("The message is not valid.", errors=errors) from error


# (user id, device id) -> the org of that device, once the user may view it (else NotFound).
# The caller passes the devices context's check: devices pushes status changes here, so
# realtime sits below it and does not import it (docs/adr/0020). The same for chat channels:
# (user id, channel id) -> the channel's org, once the user has joined it; and the same for
# a sketch of such a channel.
type DeviceOrg = Callable[[str, str], str]
type ChatOrg = Callable[[str, str], str]


def _refuse_chat(user_id: str, channel_id: str) -> str:
    raise NotFound("No such channel.")


def _refuse_sketch(user_id: str, sketch_id: str) -> str:
    raise NotFound("No such sketch.")


def _channel(
    user_id: str,
    message: SubscriptionMessage,
    device_org: DeviceOrg,
    chat_org: ChatOrg = _refuse_chat,
    sketch_org: ChatOrg = _refuse_sketch,
) -> tuple[str, dict[str, str]]:
    """The channel a subscription names, once the user may read it; and what the ack echoes."""
    # Here, not at the top: $connect and $disconnect import this module and need it not.
    from kumo.orgs.service import require_org_role

    # The schema requires the id each channel needs.
    if message.channel == "device":
        device_id = message.device_id or ""
        org_id = device_org(user_id, device_id)
        target = {"channel": "device", "device_id": device_id, "org_id": org_id}
        return device_channel(org_id, device_id), target
    if message.channel == "chat":
        channel_id = message.channel_id or ""
        org_id = chat_org(user_id, channel_id)
        target = {"channel": "chat", "channel_id": channel_id, "org_id": org_id}
        return chat_channel(org_id, channel_id), target
    if message.channel == "sketch":
        sketch_id = message.sketch_id or ""
        org_id = sketch_org(user_id, sketch_id)
        target = {"channel": "sketch", "sketch_id": sketch_id, "org_id": org_id}
        return sketch_channel(org_id, sketch_id), target
    if message.channel == "user":
        return user_channel(user_id), {"channel": "user", "user_id": user_id}
    org_id = message.org_id or ""
    require_org_role(org_id, user_id, "viewer")
    return org_channel(org_id, message.channel), {"channel": message.channel, "org_id": org_id}


def _connection(connection_id: str) -> ConnectionModel:
    try:
        return ConnectionModel.get(connection_key(connection_id), META)
    except DoesNotExist as error:
        raise Gone("This connection is closed; connect again.") from error


def subscribe(
    connection_id: str,
    principal: Principal,
    message: SubscriptionMessage,
    *,
    device_org: DeviceOrg,
    chat_org: ChatOrg = _refuse_chat,
    sketch_org: ChatOrg = _refuse_sketch,
) -> dict[str, Any]:
    """Join the channel; subscribing twice is a no-op. At most `subscriptions_per_connection`."""
    channel, target = _channel(principal.user_id, message, device_org, chat_org, sketch_org)
    connection = _connection(connection_id)
    limit = get_settings().subscriptions_per_connection
    existing = ConnectionModel.count(
        connection_key(connection_id), ConnectionModel.sk == subscription_sort_key(channel)
    )
    if not existing:

        def explain() -> KumoError | None:
            current = _connection(connection_id)
            if current.subscriptions >= limit:
                return SubscriptionLimitReached(
                    f"A connection may hold at most {limit} subscriptions.", limit=limit
                )
            return None

        with transaction(explain, changed="The connection changed; try again.") as write:
            write.update(
                ConnectionModel(connection_key(connection_id), META),
                actions=[ConnectionModel.subscriptions.add(1)],
                condition=ConnectionModel.pk.exists() & (ConnectionModel.subscriptions < limit),
            )
            write.save(
                ConnectionModel(
                    connection_key(connection_id),
                    subscription_sort_key(channel),
                    user_id=connection.user_id,
                    expires_at=connection.expires_at,
                ),
                condition=ConnectionModel.sk.does_not_exist(),
            )
            write.save(
                ChannelMemberModel(
                    channel_key(channel),
                    connection_id,
                    user_id=connection.user_id,
                    expires_at=connection.expires_at,
                )
            )
        logger.info("websocket subscribed", connection_id=connection_id, channel=channel)
    return _reply("subscribed", message.id, target)


def unsubscribe(
    connection_id: str,
    principal: Principal,
    message: SubscriptionMessage,
    *,
    device_org: DeviceOrg,
    chat_org: ChatOrg = _refuse_chat,
    sketch_org: ChatOrg = _refuse_sketch,
) -> dict[str, Any]:
    """Leave the channel; leaving one not joined is a no-op."""
    channel, target = _channel(principal.user_id, message, device_org, chat_org, sketch_org)
    _connection(connection_id)
    subscribed = ConnectionModel.count(
        connection_key(connection_id), ConnectionModel.sk == subscription_sort_key(channel)
    )
    if subscribed:
        with transaction(lambda: None, changed="The connection changed; try again.") as write:
            write.delete(
                ConnectionModel(connection_key(connection_id), subscription_sort_key(channel)),
                condition=ConnectionModel.sk.exists(),
            )
            write.delete(ChannelMemberModel(channel_key(channel), connection_id))
            write.update(
                ConnectionModel(connection_key(connection_id), META),
                actions=[ConnectionModel.subscriptions.add(-1)],
                condition=ConnectionModel.pk.exists(),
            )
    return _reply("unsubscribed", message.id, target)


def other_action(body: str | None) -> dict[str, Any]:
    """The $default route: `ping` answers `pong`, anything else is a 400 naming the actions."""
    try:
        data = request_body.decode_json(body or "")
    except MalformedJson:
        data = None  # plain text gets the list of actions; a deep or huge frame its own 400
    action = data.get("action") if isinstance(data, dict) else None
    if action != "ping":
        raise BadRequest(
            'Unknown action: send {"action": "subscribe" | "unsubscribe" | "ping", ...}.',
            actions=["subscribe", "unsubscribe", "ping"],
        )
    message: PingMessage = parse(body, PingMessage)
    return _reply("pong", message.id, {"at": clock.utc_iso()})


def _reply(event: str, request_id: str | None, fields: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = {"event": event, **fields}
    if request_id is not None:
        reply["id"] = request_id
    return reply
