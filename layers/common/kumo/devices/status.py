"""Device connectivity: online on every message, offline after a silence, and a
`device.status_changed` event on the bus at each change.

The common case (an online device sends again) costs one conditional write. Only a change
of status pays a second write and an event. Online devices sit in a sparse index keyed by
when they were last seen, so the offline job reads exactly the silent ones, never a Scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger
from pynamodb.exceptions import UpdateError
from pynamodb.expressions.update import Action

from kumo.core import clock, dynamo, events, metrics
from kumo.core.config import get_settings
from kumo.devices.models import (
    META,
    ONLINE_SHARDS,
    DeviceModel,
    device_key,
    online_partition,
    online_shard,
    online_sort_key,
)
from kumo.realtime import fanout

logger = Logger(child=True)

SOURCE = "kumo.devices"
STATUS_CHANGED = "device.status_changed"
# A warm function marks a device seen at most this often: a device sending every second
# would otherwise cost a device-item write (and two index writes) per batch. The offline
# silence is minutes, so a minute of staleness in last_seen_at changes no status.
SEEN_WRITE_INTERVAL_SECONDS = 60.0
_marked_at: dict[str, float] = {}


def _announce(device: DeviceModel, *, status: str, at: str) -> None:
    # The device instance holds the whole item here: PynamoDB's update returns ALL_NEW.
    events.publish(
        source=SOURCE,
        detail_type=STATUS_CHANGED,
        detail={"device_id": device.device_id, "org_id": device.org_id, "status": status, "at": at},
    )
    fanout.publish_status(device.org_id, device.device_id, status, at)


def mark_seen(device_ids: set[str]) -> None:
    """Last seen on every message batch: one write per device, not per reading."""
    now, moment = clock.utc_iso(), clock.now()
    for device_id in device_ids:
        if moment - _marked_at.get(device_id, float("-inf")) < SEEN_WRITE_INTERVAL_SECONDS:
            continue
        device = DeviceModel(device_key(device_id), META, device_id=device_id)
        seen: list[Action] = [
            DeviceModel.last_seen_at.set(now),
            DeviceModel.gsi2sk.set(online_sort_key(now, device_id)),
        ]
        try:
            device.update(actions=seen, condition=DeviceModel.status == "online")
            _marked_at[device_id] = moment
            continue
        except UpdateError as error:
            if not dynamo.condition_failed(error):
                raise
        try:
            # Not online before (or deleted): the transition, which the bus hears about.
            device.update(
                actions=[
                    *seen,
                    DeviceModel.status.set("online"),
                    DeviceModel.gsi2pk.set(online_partition(online_shard(device_id))),
                ],
                condition=DeviceModel.pk.exists() & (DeviceModel.status != "online"),
            )
        except UpdateError as error:
            if not dynamo.condition_failed(error):
                raise
            # Deleted meanwhile, or another batch made it online first: nothing to announce.
            logger.info("device status unchanged", device_id=device_id)
            continue
        _marked_at[device_id] = moment
        _announce(device, status="online", at=now)


@dataclass(frozen=True, slots=True)
class OfflineReport:
    silent: int
    marked_offline: int
    online: int


def mark_silent_offline(now: datetime | None = None) -> OfflineReport:
    """The scheduled job: every online device not heard from within the silence is offline."""
    moment = now or datetime.fromtimestamp(clock.now(), UTC)
    cutoff = clock.utc_iso(
        (moment - timedelta(seconds=get_settings().device_offline_seconds)).timestamp()
    )
    silent = [
        key.pk.removeprefix("DEVICE#")
        for shard in range(ONLINE_SHARDS)
        for key in DeviceModel.online.query(online_partition(shard), DeviceModel.gsi2sk < cutoff)
    ]
    marked = 0
    for device_id in silent:
        device = DeviceModel(device_key(device_id), META, device_id=device_id)
        try:
            # Only if still silent: a message that arrived since keeps it online.
            device.update(
                actions=[
                    DeviceModel.status.set("offline"),
                    DeviceModel.gsi2pk.remove(),
                    DeviceModel.gsi2sk.remove(),
                ],
                condition=(DeviceModel.status == "online") & (DeviceModel.last_seen_at < cutoff),
            )
        except UpdateError as error:
            if not dynamo.condition_failed(error):
                raise
            continue
        marked += 1
        _announce(device, status="offline", at=clock.utc_iso())
    online = count_online()
    metrics.count(metrics.DEVICES_MARKED_OFFLINE, marked)
    metrics.count(metrics.DEVICES_ONLINE, online)
    logger.info("offline sweep", silent=len(silent), marked_offline=marked, online=online)
    return OfflineReport(silent=len(silent), marked_offline=marked, online=online)


def count_online() -> int:
    """Devices online now, across every org: a COUNT query per shard of the sparse index.

    It reads the whole (keys-only) index, about one read unit per 70 online devices; once a
    minute that is cheap next to keeping a counter exact through every transition and delete.
    """
    return sum(DeviceModel.online.count(online_partition(shard)) for shard in range(ONLINE_SHARDS))
