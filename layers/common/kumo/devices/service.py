"""Devices: the registry of an organization's devices, their API keys and desired config.

Tenant isolation: every user operation loads the caller's membership of the device's org
first; a device of an org the caller is not in answers the same 404 as a missing one.
A device principal reaches only its own item, through the device-facing routes.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from pynamodb.exceptions import DoesNotExist

from kumo.core import abuse_limits as limits
from kumo.core import clock, dynamo, rate_limit
from kumo.core.config import get_settings
from kumo.core.errors import KumoError, NotFound, invalid
from kumo.core.ids import is_id, new_id
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor
from kumo.devices import iot, keys
from kumo.devices.errors import DeviceLimitReached
from kumo.devices.models import (
    DEVICE_COUNT,
    META,
    DeviceCountModel,
    DeviceModel,
    RateCounterModel,
    device_key,
    org_key,
)
from kumo.devices.schemas import (
    DeviceConfigOut,
    DeviceOut,
    RegisterDeviceRequest,
    UpdateDeviceRequest,
)
from kumo.orgs.schemas import OrgRole
from kumo.orgs.service import require_org_role

logger = Logger(child=True)

_CHANGED = "The device changed meanwhile; try again."

MAX_CONFIG_BYTES = 16 * 1024
_NO_DEVICE = "No such device."


def _find(device_id: str) -> DeviceModel | None:
    if not is_id(device_id):
        return None
    return dynamo.get_or_none(DeviceModel, device_key(device_id), META, consistent_read=True)


def get_device_for(user_id: str, device_id: str, minimum_role: OrgRole) -> DeviceModel:
    """The device, if the user's role in its org is high enough; a stranger sees a 404."""
    device = _find(device_id)
    if device is None:
        raise NotFound(_NO_DEVICE)
    try:
        require_org_role(device.org_id, user_id, minimum_role)
    except NotFound as error:
        raise NotFound(_NO_DEVICE) from error
    return device


def viewable_device_org(user_id: str, device_id: str) -> str:
    """The org of a device the user may view (404 otherwise): the live stream's check."""
    return get_device_for(user_id, device_id, "viewer").org_id


def enabled_device_org(device_id: str) -> str | None:
    """The org of an enabled device, or None (unknown or disabled): what ingestion checks a
    message's topic against. An eventually consistent read: it runs for every batch."""
    try:
        device = DeviceModel.get(device_key(device_id), META)
    except DoesNotExist:
        return None
    return device.org_id if device.enabled else None


def mark_seen(device_ids: set[str]) -> None:
    """Traffic from these devices: online from now on (kumo.devices.status)."""
    # Here, not at the top: only the traffic paths need the status module and its push.
    from kumo.devices import status

    status.mark_seen(device_ids)


def get_own_device(device_id: str) -> DeviceModel:
    device = _find(device_id)
    if device is None:
        raise NotFound(_NO_DEVICE)
    return device


def device_out(device: DeviceModel) -> DeviceOut:
    return DeviceOut(
        id=device.device_id,
        org_id=device.org_id,
        name=device.name,
        type=device.device_type,
        metadata=json.loads(device.metadata_json),
        enabled=device.enabled,
        status=device.status,  # type: ignore[arg-type]
        key_hint=device.key_hint,
        thing_name=device.thing_name,
        last_seen_at=device.last_seen_at,
        config_version=int(device.config_version),
        reported_version=int(device.reported_version)
        if device.reported_version is not None
        else None,
        created_at=device.created_at,
        updated_at=device.updated_at,
    )


def config_out(device: DeviceModel) -> DeviceConfigOut:
    reported = device.reported_config_json
    return DeviceConfigOut(
        version=int(device.config_version),
        config=json.loads(device.desired_config_json),
        reported_version=int(device.reported_version)
        if device.reported_version is not None
        else None,
        reported=json.loads(reported) if reported else None,
    )


def _hint(key: str) -> str:
    return f"{key[:12]}…{key[-4:]}"


def register_device(
    *, user_id: str, request: RegisterDeviceRequest
) -> tuple[DeviceModel, str, iot.DeviceIdentity | None]:
    """Store the device with its key's hash, counted against the org's plan limit, within
    the user's allowance of registrations (each may create an IoT thing and certificate)."""
    require_org_role(request.org_id, user_id, "admin")
    spent = rate_limit.spend(RateCounterModel, limits.DEVICE_REGISTER_PER_USER, user_id)
    limit = get_settings().devices_per_org
    device_id, now = new_id(), clock.utc_iso()
    api_key = keys.new_key(device_id)
    device = DeviceModel(
        pk=device_key(device_id),
        sk=META,
        device_id=device_id,
        org_id=request.org_id,
        name=request.name,
        device_type=request.type,
        metadata_json=json.dumps(request.metadata, sort_keys=True),
        key_hash=keys.hash_key(api_key),
        key_hint=_hint(api_key),
        created_by=user_id,
        created_at=now,
        updated_at=now,
        gsi1pk=org_key(request.org_id),
        gsi1sk=device_key(device_id),
    )
    identity = iot.create_identity(request.org_id, device_id) if request.certificate else None
    if identity is not None:
        device.thing_name, device.certificate_id = identity.thing_name, identity.certificate_id

    def explain() -> KumoError:
        return DeviceLimitReached(
            f"This organization has reached its limit of {limit} devices.", limit=limit
        )

    try:
        with dynamo.transaction(explain, changed=_CHANGED) as transaction:
            transaction.save(device, condition=DeviceModel.pk.does_not_exist())
            transaction.update(
                DeviceCountModel(org_key(request.org_id), DEVICE_COUNT),
                actions=[DeviceCountModel.device_count.add(1)],
                condition=(DeviceCountModel.device_count < limit)
                | DeviceCountModel.device_count.does_not_exist(),
            )
    except KumoError:
        if identity is not None:  # a refused device must not leave a live certificate
            iot.delete_identity(identity.thing_name, identity.certificate_id)
        spent.refund()
        raise
    logger.info("device registered", device_id=device_id, org_id=request.org_id)
    return device, api_key, identity


def list_devices(
    *, user_id: str, org_id: str, status: str | None, limit: int | None, cursor: str | None
) -> tuple[list[DeviceModel], str | None]:
    require_org_role(org_id, user_id, "viewer")
    condition = DeviceModel.status == status if status else None
    results = DeviceModel.by_org.query(
        org_key(org_id),
        filter_condition=condition,
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(cursor, partition=("gsi1pk", org_key(org_id))),
    )
    devices = list(results)
    return devices, encode_cursor(results.last_evaluated_key)


def update_device(*, user_id: str, device_id: str, request: UpdateDeviceRequest) -> DeviceModel:
    device = get_device_for(user_id, device_id, "member")
    actions: list[Any] = [DeviceModel.updated_at.set(clock.utc_iso())]
    if request.name is not None:
        actions.append(DeviceModel.name.set(request.name))
    if request.type is not None:
        actions.append(DeviceModel.device_type.set(request.type))
    if request.metadata is not None:
        actions.append(DeviceModel.metadata_json.set(json.dumps(request.metadata, sort_keys=True)))
    if request.enabled is not None:
        actions.append(DeviceModel.enabled.set(request.enabled))
    device.update(actions=actions, condition=DeviceModel.pk.exists())
    logger.info("device updated", device_id=device_id)
    return device


def delete_device(*, user_id: str, device_id: str) -> None:
    """Deleting the item revokes the key at once; the certificate is deactivated first."""
    device = get_device_for(user_id, device_id, "admin")
    if device.thing_name and device.certificate_id:
        iot.delete_identity(device.thing_name, device.certificate_id)
    with dynamo.transaction(lambda: NotFound(_NO_DEVICE), changed=_CHANGED) as transaction:
        transaction.delete(device, condition=DeviceModel.pk.exists())
        transaction.update(
            DeviceCountModel(org_key(device.org_id), DEVICE_COUNT),
            actions=[DeviceCountModel.device_count.add(-1)],
        )
    logger.info("device deleted", device_id=device_id)


def rotate_key(*, user_id: str, device_id: str) -> str:
    """A new key; the old one stops working with this write."""
    device = get_device_for(user_id, device_id, "admin")
    api_key = keys.new_key(device_id)
    device.update(
        actions=[
            DeviceModel.key_hash.set(keys.hash_key(api_key)),
            DeviceModel.key_hint.set(_hint(api_key)),
            DeviceModel.updated_at.set(clock.utc_iso()),
        ],
        condition=DeviceModel.pk.exists(),
    )
    logger.info("device key rotated", device_id=device_id)
    return api_key


def _config_json(config: dict[str, Any]) -> str:
    encoded = json.dumps(config, sort_keys=True, separators=(",", ":"))
    if len(encoded.encode()) > MAX_CONFIG_BYTES:
        message = f"The config must be at most {MAX_CONFIG_BYTES // 1024} KiB of JSON."
        raise invalid("config", message)
    return encoded


def set_desired_config(*, user_id: str, device_id: str, config: dict[str, Any]) -> DeviceModel:
    """A new desired config; its version is the one a device reports once it applied it."""
    device = get_device_for(user_id, device_id, "member")
    device.update(
        actions=[
            DeviceModel.desired_config_json.set(_config_json(config)),
            DeviceModel.config_version.add(1),
            DeviceModel.updated_at.set(clock.utc_iso()),
        ],
        condition=DeviceModel.pk.exists(),
    )
    logger.info("device config set", device_id=device_id, version=int(device.config_version))
    return device


def report_config(*, device_id: str, version: int, config: dict[str, Any]) -> DeviceModel:
    """Record the config version a device applied (over HTTP, or its shadow through SQS).

    The same report again changes nothing, and one older than the version recorded is ignored:
    SQS and MQTT redeliver and reorder. A version that was never set is refused."""
    device = get_own_device(device_id)
    if version > int(device.config_version):
        message = f"Version {version} was never set; the latest is {int(device.config_version)}."
        raise invalid("version", message)
    recorded = dynamo.conditional_update(
        device,
        actions=[
            DeviceModel.reported_config_json.set(_config_json(config)),
            DeviceModel.reported_version.set(version),
        ],
        condition=DeviceModel.pk.exists()
        & (
            DeviceModel.reported_version.does_not_exist()
            | (DeviceModel.reported_version <= version)
        ),
    )
    if not recorded:
        logger.info(
            "stale config report ignored",
            device_id=device_id,
            version=version,
            recorded=device.reported_version,
        )
    return device
