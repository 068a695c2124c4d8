"""Device commands: POST and GET /api/v1/devices/{device_id}/commands[/{command_id}], the
device-facing GET /api/v1/device/commands and POST /api/v1/device/commands/{id}/result, and
the SQS batch the command-results topic rule fills (kumo/<org>/<device>/commands/result).

A command is stored queued, then pushed on kumo/<org>/<device>/commands; a device that was
not listening (one that sleeps, or a failed push) gets it by polling over HTTP.

    queued ──poll, or a "delivered" report──▶ delivered ──result──▶ succeeded | failed
    queued ─────────────────────result─────────────────────────────▶ succeeded | failed
    queued | delivered ──its time to live passes──▶ expired

A final state never changes. Results arrive over HTTP and through SQS, which redelivers and
reorders, so the same final result again is a no-op and a "delivered" after a final result
is ignored; a different final result is a conflict, and so is any result after expiry.
Nothing sweeps expiry: a pending command past it reads as expired, and whoever reads it first
writes that down with a conditional update (a result that won the race stands).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.expressions.condition import Condition

from kumo.core import abuse_limits as limits
from kumo.core import batch, clock, dynamo, metrics, rate_limit
from kumo.core.errors import Conflict, KumoError, NotFound, invalid
from kumo.core.ids import is_id, new_id
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor
from kumo.devices import iot, service
from kumo.devices.errors import CommandCompleted, CommandExpired
from kumo.devices.models import (
    COMMAND_PREFIX,
    CommandModel,
    RateCounterModel,
    command_sort_key,
    commands_since,
    device_key,
)
from kumo.devices.schemas import (
    MAX_COMMAND_TTL_SECONDS,
    CommandOut,
    CommandResultRequest,
    CommandStatus,
    SendCommandRequest,
)

logger = Logger(child=True)

MAX_JSON_BYTES = 8 * 1024
MAX_PENDING = 20
# The table's TTL removes a command this long after it expired: a month of history.
HISTORY_SECONDS = 30 * 86_400
# Pending commands are looked for among those created within the longest time to live, with
# room for clocks that differ between the function that made an id and the one reading it.
_CLOCK_MARGIN_SECONDS = 300
PENDING = ("queued", "delivered")
FINAL = ("succeeded", "failed")
_NO_COMMAND = "No such command."
# Envelope fields the results rule adds to the device's message.
_RULE_FIELDS = frozenset({"org_id", "device_id", "received_at"})
# A write that lost a race is decided again on what the other left; more rounds than this
# means something keeps changing the command, and the caller may retry.
_ROUNDS = 3


# The shared client, under the name this module's tests replace.
_iot_data = iot.data_client


def commands_topic(org_id: str, device_id: str) -> str:
    return f"{iot.topic_root(org_id, device_id)}/commands"


def _json_object(value: dict[str, Any], field: str) -> str:
    try:
        encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError as error:
        message = "NaN and infinities are not JSON."
        raise invalid(field, message) from error
    if len(encoded.encode()) > MAX_JSON_BYTES:
        message = f"{field} must be at most {MAX_JSON_BYTES // 1024} KiB of JSON."
        raise invalid(field, message)
    return encoded


def command_out(command: CommandModel) -> CommandOut:
    return CommandOut(
        id=command.command_id,
        org_id=command.org_id,
        device_id=command.device_id,
        name=command.name,
        params=json.loads(command.params_json),
        status=command.status,  # type: ignore[arg-type]
        created_by=command.created_by,
        created_at=command.created_at,
        expires_at=command.expires_at_iso,
        delivered_at=command.delivered_at,
        completed_at=command.completed_at,
        result=json.loads(command.result_json) if command.result_json else None,
        error=command.error,
    )


def _find(device_id: str, command_id: str) -> CommandModel:
    if not is_id(command_id):
        raise NotFound(_NO_COMMAND)
    command = dynamo.get_or_none(
        CommandModel, device_key(device_id), command_sort_key(command_id), consistent_read=True
    )
    if command is None:
        raise NotFound(_NO_COMMAND)
    return command


def _observe(command: CommandModel, now: str) -> CommandModel:
    """The command as it stands at `now`: a pending one past its expiry is written expired."""
    if command.status in PENDING and now > command.expires_at_iso:
        expired = dynamo.conditional_update(
            command,
            actions=[CommandModel.status.set("expired")],
            condition=CommandModel.status.is_in(*PENDING),
        )
        if expired:
            metrics.count(metrics.COMMANDS_EXPIRED)
            logger.info("command expired", command_id=command.command_id)
    return command


# --- users ----------------------------------------------------------------------------------


def send_command(*, user_id: str, device_id: str, request: SendCommandRequest) -> CommandModel:
    """Store the command queued, then push it; a failed push leaves it to polling."""
    device = service.get_device_for(user_id, device_id, "member")
    params_json = _json_object(request.params, "params")
    rate_limit.spend(RateCounterModel, limits.COMMAND_PER_USER, user_id)
    now = clock.now()
    expires = now + request.ttl_seconds
    command_id = new_id()
    command = CommandModel(
        pk=device_key(device_id),
        sk=command_sort_key(command_id),
        command_id=command_id,
        org_id=device.org_id,
        device_id=device_id,
        name=request.name,
        params_json=params_json,
        status="queued",
        created_by=user_id,
        created_at=clock.utc_iso(now),
        expires_at_iso=clock.utc_iso(expires),
        expires_at=int(expires) + HISTORY_SECONDS,
    )
    command.save(condition=CommandModel.pk.does_not_exist())
    _push(command, request.params)
    metrics.count(metrics.COMMANDS_SENT)
    logger.info("command sent", command_id=command_id, device_id=device_id, command=request.name)
    return command


def _push(command: CommandModel, params: dict[str, Any]) -> None:
    topic = commands_topic(command.org_id, command.device_id)
    payload = {
        "id": command.command_id,
        "name": command.name,
        "params": params,
        "expires_at": command.expires_at_iso,
    }
    try:
        _iot_data().publish(topic=topic, qos=1, payload=json.dumps(payload).encode())
    except (BotoCoreError, ClientError) as error:
        logger.warning(
            "command not pushed; it stays queued for polling",
            command_id=command.command_id,
            device_id=command.device_id,
            error=str(error),
        )


def _status_filter(status: CommandStatus | None, now: str) -> Condition | None:
    """Statuses as they read at `now`, whether or not an expiry was written down yet."""
    if status is None:
        return None
    condition: Condition = CommandModel.status == status
    if status in PENDING:
        condition = condition & (CommandModel.expires_at_iso >= now)
    elif status == "expired":
        lapsed = CommandModel.status.is_in(*PENDING) & (CommandModel.expires_at_iso < now)
        condition = condition | lapsed
    return condition


def list_commands(
    *,
    user_id: str,
    device_id: str,
    status: CommandStatus | None,
    limit: int | None,
    cursor: str | None,
) -> tuple[list[CommandModel], str | None]:
    """A device's commands, newest first."""
    service.get_device_for(user_id, device_id, "viewer")
    partition = device_key(device_id)
    now = clock.utc_iso()
    results = CommandModel.query(
        partition,
        CommandModel.sk.startswith(COMMAND_PREFIX),
        filter_condition=_status_filter(status, now),
        scan_index_forward=False,
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(cursor, partition=("pk", partition)),
    )
    commands = [_observe(command, now) for command in results]
    return commands, encode_cursor(results.last_evaluated_key)


def get_command(*, user_id: str, device_id: str, command_id: str) -> CommandModel:
    service.get_device_for(user_id, device_id, "viewer")
    return _observe(_find(device_id, command_id), clock.utc_iso())


# --- devices --------------------------------------------------------------------------------


def pending_commands(device_id: str) -> list[CommandModel]:
    """The commands a device still has to carry out, oldest first; queued ones become
    delivered. A delivered one comes again until it is answered or expires: the device may
    have lost it."""
    now = clock.now()
    now_iso = clock.utc_iso(now)
    since = now - MAX_COMMAND_TTL_SECONDS - _CLOCK_MARGIN_SECONDS
    results = CommandModel.query(
        device_key(device_id),
        CommandModel.sk.between(*commands_since(since)),
        filter_condition=CommandModel.status.is_in(*PENDING),
        consistent_read=True,
    )
    pending: list[CommandModel] = []
    for command in results:
        if len(pending) == MAX_PENDING:
            break
        if now_iso > command.expires_at_iso:
            _observe(command, now_iso)
            continue
        if command.status == "queued":
            _mark_delivered(command, now_iso)
        if command.status == "delivered":
            pending.append(command)
    return pending


def _mark_delivered(command: CommandModel, now: str) -> None:
    dynamo.conditional_update(
        command,
        actions=[CommandModel.status.set("delivered"), CommandModel.delivered_at.set(now)],
        condition=(CommandModel.status == "queued") & (CommandModel.expires_at_iso >= now),
    )


def report_result(
    *, device_id: str, command_id: str, request: CommandResultRequest
) -> CommandModel:
    """Record what the device says about one of its own commands (another's is a 404)."""
    if request.status == "delivered" and (request.result is not None or request.error is not None):
        message = "A delivered report carries no result or error."
        raise invalid("status", message)
    result_json = _json_object(request.result, "result") if request.result is not None else None
    command = _find(device_id, command_id)
    for _ in range(_ROUNDS):
        now = clock.utc_iso()
        _observe(command, now)
        if command.status in FINAL:
            same = (command.status, command.result_json, command.error) == (
                request.status,
                result_json,
                request.error,
            )
            if same or request.status == "delivered":
                return command  # a redelivered result, or an acknowledgement overtaken by it
            raise CommandCompleted(
                f"The command already {command.status}; its result cannot change.",
                command_status=command.status,
            )
        if command.status == "expired":
            raise CommandExpired(
                f"The command expired at {command.expires_at_iso}.",
                expires_at=command.expires_at_iso,
            )
        if request.status == "delivered" and command.status == "delivered":
            return command
        recorded = dynamo.conditional_update(
            command,
            actions=_result_actions(request, result_json, now),
            condition=CommandModel.status.is_in(*PENDING) & (CommandModel.expires_at_iso >= now),
        )
        if not recorded:
            continue
        if request.status == "succeeded":
            metrics.count(metrics.COMMANDS_SUCCEEDED)
        elif request.status == "failed":
            metrics.count(metrics.COMMANDS_FAILED)
        logger.info(
            "command reported", command_id=command_id, device_id=device_id, status=request.status
        )
        return command
    raise Conflict("The command changed meanwhile; try again.")


def _result_actions(request: CommandResultRequest, result_json: str | None, now: str) -> list[Any]:
    if request.status == "delivered":
        return [CommandModel.status.set("delivered"), CommandModel.delivered_at.set(now)]
    actions: list[Any] = [
        CommandModel.status.set(request.status),
        CommandModel.completed_at.set(now),
        # A result implies delivery; one that skipped the acknowledgement gets its time too.
        CommandModel.delivered_at.set(CommandModel.delivered_at | now),
    ]
    if result_json is not None:
        actions.append(CommandModel.result_json.set(result_json))
    if request.error is not None:
        actions.append(CommandModel.error.set(request.error))
    return actions


# --- results over MQTT ----------------------------------------------------------------------


def _device_org(device_id: str, known: dict[str, str | None]) -> str | None:
    if device_id not in known:
        try:
            device = service.get_own_device(device_id)
        except NotFound:
            known[device_id] = None
        else:
            known[device_id] = device.org_id if device.enabled else None
    return known[device_id]


def ingest_results(records: Iterable[dict[str, Any]]) -> list[str]:
    """One SQS batch from the command-results rule; answers the message ids to retry.

    A message that cannot be read, names a device that does not exist (or another org than
    the device's own), or that report_result refuses is dropped with a log line: trying it
    again would not change the answer. Only unexpected errors are retried."""
    devices: dict[str, str | None] = {}
    return batch.failed_message_ids(
        records, lambda record: _ingest_one(record, devices), what="command result"
    )


def _ingest_one(record: dict[str, Any], devices: dict[str, str | None]) -> None:
    try:
        message = json.loads(record["body"])
        org_id, device_id = str(message["org_id"]), str(message["device_id"])
        command_id = str(message["id"])
        fields = {k: v for k, v in message.items() if k not in _RULE_FIELDS and k != "id"}
        request = CommandResultRequest.model_validate(fields)
    except (KeyError, TypeError, ValueError) as error:  # pydantic's ValidationError included
        logger.warning(
            "command result dropped: unreadable",
            message_id=record.get("messageId"),
            error=str(error)[:300],
        )
        return
    if _device_org(device_id, devices) != org_id:
        logger.warning("command result for an unknown device dropped", device_id=device_id)
        return
    try:
        report_result(device_id=device_id, command_id=command_id, request=request)
    except KumoError as error:
        logger.warning(
            "command result refused",
            device_id=device_id,
            command_id=command_id,
            reason=error.slug,
            detail=error.detail,
        )
