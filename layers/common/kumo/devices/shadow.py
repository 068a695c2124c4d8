"""Device config over MQTT: PUT /api/v1/devices/{device_id}/config also writes the desired
config into the named shadow `config` of the device's IoT thing; the SQS queue
kumo-<stage>-config-shadow retries writes that failed; and the SQS queue
kumo-<stage>-config-reports (filled by the topic rule kumo_<stage>_config_reports) records
what devices report they applied, as POST /api/v1/device/config/applied does.

    desired   {"config": {...}, "config_version": N}   written by Kumo, the whole config
    reported  {"config": {...}, "config_version": N}   written by the device once applied

The devices table stays the record: the shadow is a copy for MQTT devices, rewritten from the
table whenever it differs. Only devices registered with a certificate have a thing, and so a
shadow; the others get their config over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from kumo.core import aws, batch
from kumo.core.config import get_settings
from kumo.core.errors import KumoError, NotFound
from kumo.devices import iot, service
from kumo.devices.models import DeviceModel
from kumo.devices.schemas import ReportedConfigRequest

logger = Logger(child=True)

SHADOW_NAME = "config"
# A retry waits this long in the queue: a failing IoT Core is given a moment.
RETRY_DELAY_SECONDS = 10
# A write that lost a race (409) reads again; more rounds mean something keeps changing it.
_ROUNDS = 4
# Errors that a retry would only repeat: the document itself is refused (too large, too deep),
# or the thing is gone.
_PERMANENT = frozenset(
    {"InvalidRequestException", "RequestEntityTooLargeException", "ResourceNotFoundException"}
)


class ShadowBusy(RuntimeError):
    """The shadow kept changing under every write; the queue tries again later."""


def shadow_topic(thing: str) -> str:
    return f"$aws/things/{thing}/shadow/name/{SHADOW_NAME}"


# --- desired: Kumo → shadow ------------------------------------------------------------------


def set_desired_config(*, user_id: str, device_id: str, config: dict[str, Any]) -> DeviceModel:
    """Store the new desired config (the record), then copy it to the device's shadow.

    A shadow write that fails does not fail the request: the config is stored and served over
    HTTP, and the write is retried from the config-shadow queue."""
    device = service.set_desired_config(user_id=user_id, device_id=device_id, config=config)
    if device.thing_name:
        push_config(device.device_id)
    return device


def push_config(device_id: str) -> None:
    try:
        sync_config(device_id)
    except (BotoCoreError, ClientError, ShadowBusy) as error:
        if isinstance(error, ClientError) and _code(error) in _PERMANENT:
            logger.error(
                "config shadow refused the config; the device gets it over HTTP only",
                device_id=device_id,
                reason=_code(error),
            )
            return
        logger.warning(
            "config shadow not written; queued for a retry", device_id=device_id, error=str(error)
        )
        _queue_retry(device_id)


def _queue_retry(device_id: str) -> None:
    try:
        aws.sqs().send_message(
            QueueUrl=get_settings().config_shadow_queue_url,
            MessageBody=json.dumps({"device_id": device_id}),
            DelaySeconds=RETRY_DELAY_SECONDS,
        )
    except (BotoCoreError, ClientError):
        # The next config change rewrites the shadow; until then HTTP serves the config.
        logger.exception("config shadow retry not queued", device_id=device_id)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _read_shadow(thing: str) -> tuple[int | None, dict[str, Any]]:
    """The shadow's document version (None when there is no shadow) and its desired state."""
    try:
        response = iot.data_client().get_thing_shadow(thingName=thing, shadowName=SHADOW_NAME)
    except ClientError as error:
        if _code(error) == "ResourceNotFoundException":
            return None, {}
        raise
    document = json.loads(response["payload"].read())
    desired = (document.get("state") or {}).get("desired") or {}
    return int(document["version"]), desired


def _without_nulls(value: Any) -> Any:
    """What a shadow keeps of a JSON value: a null member is how an update deletes a key."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def _replacing(old: Any, new: dict[str, Any]) -> dict[str, Any]:
    """An update that turns `old` into `new`: a shadow update merges objects, so every key of
    `old` that `new` lacks is sent as null, at any depth."""
    patch: dict[str, Any] = dict(new)
    if isinstance(old, dict):
        for key, value in old.items():
            if key not in new:
                patch[key] = None
            elif isinstance(value, dict) and isinstance(new[key], dict):
                patch[key] = _replacing(value, new[key])
    return patch


def _device(device_id: str) -> DeviceModel | None:
    try:
        return service.get_own_device(device_id)
    except NotFound:
        return None


def sync_config(device_id: str) -> None:
    """Make the device's shadow hold its desired config and version, as the table has them.

    The shadow is read before the table, so the table is at least as new as anything a
    concurrent sync wrote; the write carries the shadow's document version, so a concurrent
    write makes it fail (409) and this one reads again. Only the first write to a shadow that
    does not exist yet has no version to carry, and it is checked by one more round."""
    for _ in range(_ROUNDS):
        device = _device(device_id)
        if device is None or not device.thing_name:
            return  # deleted meanwhile, or a device without a thing: nothing to copy
        shadow_version, desired = _read_shadow(device.thing_name)
        device = _device(device_id)
        if device is None:
            return
        config = json.loads(device.desired_config_json)
        wanted = {"config": _without_nulls(config), "config_version": int(device.config_version)}
        if desired == wanted:
            return
        request: dict[str, Any] = {
            "state": {
                "desired": {
                    "config": _replacing(desired.get("config"), wanted["config"]),
                    "config_version": wanted["config_version"],
                }
            }
        }
        if shadow_version is not None:
            request["version"] = shadow_version
        try:
            iot.data_client().update_thing_shadow(
                thingName=device.thing_name,
                shadowName=SHADOW_NAME,
                payload=json.dumps(request).encode(),
            )
        except ClientError as error:
            if _code(error) == "ConflictException":
                continue
            raise
        logger.info("config shadow written", device_id=device_id, version=wanted["config_version"])
        if shadow_version is not None:
            return
    raise ShadowBusy(f"the config shadow of {device_id} kept changing")


def retry_batch(records: Iterable[dict[str, Any]]) -> list[str]:
    """One SQS batch of the config-shadow queue; answers the message ids to retry."""
    return batch.failed_message_ids(records, _retry_one, what="config shadow retry")


def _retry_one(record: dict[str, Any]) -> None:
    try:
        device_id = str(json.loads(record["body"])["device_id"])
    except (KeyError, TypeError, ValueError):
        logger.warning(
            "config shadow retry dropped: unreadable", message_id=record.get("messageId")
        )
        return
    try:
        sync_config(device_id)
    except ClientError as error:
        if _code(error) in _PERMANENT:
            logger.error("config shadow refused the config", device_id=device_id)
            return
        logger.exception("config shadow still not written", device_id=device_id)
        raise batch.Retry from error
    except (BotoCoreError, ShadowBusy) as error:
        logger.exception("config shadow still not written", device_id=device_id)
        raise batch.Retry from error


# --- reported: shadow → Kumo -----------------------------------------------------------------


def device_of_thing(thing: str) -> str | None:
    """The enabled device whose own thing this is, or None.

    The thing name comes from the topic (topic(3)); on AWS a device's policy lets it update
    only its own thing's shadow, and the registry must name this very thing for the device."""
    device_id = iot.device_id_of(thing)
    if device_id is None:
        return None
    try:
        device = service.get_own_device(device_id)
    except NotFound:
        return None
    return device_id if device.thing_name == thing and device.enabled else None


def ingest_reports(records: Iterable[dict[str, Any]]) -> list[str]:
    """One SQS batch from the config-reports rule; answers the message ids to retry.

    A report that cannot be read, comes from a thing that is no enabled device's own, or that
    report_config refuses (a version never set) is dropped with a log line: trying it again
    would not change the answer. Only unexpected errors are retried."""
    return batch.failed_message_ids(records, _ingest_one, what="config report")


def _ingest_one(record: dict[str, Any]) -> None:
    try:
        message = json.loads(record["body"])
        thing = str(message["thing_name"])
        report = ReportedConfigRequest.model_validate(
            {"version": message.get("version"), "config": message.get("config")}
        )
    except (KeyError, TypeError, ValueError) as error:  # pydantic's ValidationError included
        logger.warning(
            "config report dropped: unreadable",
            message_id=record.get("messageId"),
            error=str(error)[:300],
        )
        return
    device_id = device_of_thing(thing)
    if device_id is None:
        logger.warning("config report from no device's thing dropped", thing_name=thing)
        return
    try:
        service.report_config(device_id=device_id, version=report.version, config=report.config)
    except KumoError as error:
        logger.warning(
            "config report refused", device_id=device_id, reason=error.slug, detail=error.detail
        )
