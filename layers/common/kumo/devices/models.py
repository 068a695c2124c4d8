"""Devices table items. Key building for this context lives here (and, for the authorizer's
one GetItem, in kumo.devices.keys).

Access patterns (all GetItem or Query):
  device by id               DEVICE#<id> / META
  an org's devices           gsi1: ORG#<org id> / DEVICE#<id>     (filter by status)
  an org's device count      ORG#<org id> / DEVICECOUNT           (the plan limit)
  a device's command         DEVICE#<id> / CMD#<command id>
  a device's commands        DEVICE#<id> / begins_with CMD#       (newest first; by status)
  its still-pending commands DEVICE#<id> / CMD#<first id a longest time to live ago> .. CMD#~
                                                                  (oldest first: ids sort by
                                                                   creation time)
  online devices by silence  gsi2: ONLINE#<shard> / <last seen>#<id>  (online devices only)

The telemetry context keeps its exports in this table, under keys it builds itself
(kumo.telemetry.models, ADR 20).
  rate-limit windows       RATE#<limit>#<subject hash> / WINDOW#<start>  (kumo.core.rate_limit)
"""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from kumo.core.config import get_settings
from kumo.core.ids import first_id_at, shard_of

META = "META"
DEVICE_COUNT = "DEVICECOUNT"
COMMAND_PREFIX = "CMD#"


def device_key(device_id: str) -> str:
    return f"DEVICE#{device_id}"


def org_key(org_id: str) -> str:
    return f"ORG#{org_id}"


def command_sort_key(command_id: str) -> str:
    return f"{COMMAND_PREFIX}{command_id}"


def commands_since(timestamp: float) -> tuple[str, str]:
    """Sort key bounds of the commands created since `timestamp`: ids sort by creation time,
    and "~" sorts after every id character."""
    return command_sort_key(first_id_at(timestamp)), f"{COMMAND_PREFIX}~"


# The offline job reads online devices oldest-seen first; a few shards keep the index key
# that every message of every device rewrites off a single partition.
ONLINE_SHARDS = 4


def online_partition(shard: int) -> str:
    return f"ONLINE#{shard}"


def online_shard(device_id: str) -> int:
    return shard_of(device_id, ONLINE_SHARDS)


def online_sort_key(last_seen_at: str, device_id: str) -> str:
    return f"{last_seen_at}#{device_id}"


class DevicesItem(Model):
    """An item of the devices table: the table and its key, for every model stored there."""

    class Meta:
        table_name = get_settings().devices_table
        region = get_settings().region

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class OrgDevicesIndex(GlobalSecondaryIndex["DeviceModel"]):
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class OnlineDevicesIndex(GlobalSecondaryIndex["DeviceModel"]):
    class Meta:
        index_name = "gsi2"
        projection = KeysOnlyProjection()

    gsi2pk = UnicodeAttribute(hash_key=True)
    gsi2sk = UnicodeAttribute(range_key=True)


class DeviceModel(DevicesItem):
    sk = UnicodeAttribute(range_key=True, default=META)
    device_id = UnicodeAttribute()
    org_id = UnicodeAttribute()
    name = UnicodeAttribute()
    device_type = UnicodeAttribute()
    metadata_json = UnicodeAttribute(default="{}")
    enabled = BooleanAttribute(default=True)
    # Connectivity, set by traffic and by the offline job: never_seen | online | offline.
    status = UnicodeAttribute(default="never_seen")
    key_hash = UnicodeAttribute()
    key_hint = UnicodeAttribute()
    thing_name = UnicodeAttribute(null=True)
    certificate_id = UnicodeAttribute(null=True)
    desired_config_json = UnicodeAttribute(default="{}")
    config_version = NumberAttribute(default=0)
    reported_config_json = UnicodeAttribute(null=True)
    reported_version = NumberAttribute(null=True)
    last_seen_at = UnicodeAttribute(null=True)
    created_by = UnicodeAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    gsi2pk = UnicodeAttribute(null=True)
    gsi2sk = UnicodeAttribute(null=True)

    by_org = OrgDevicesIndex()
    online = OnlineDevicesIndex()


class DeviceCountModel(DevicesItem):
    sk = UnicodeAttribute(range_key=True, default=DEVICE_COUNT)
    # Changed in the register and delete transactions: the plan limit is a condition.
    device_count = NumberAttribute(default=0)


class CommandModel(DevicesItem):
    """A command sent to a device, kept (by the table's TTL) a month after it expires."""

    command_id = UnicodeAttribute()
    org_id = UnicodeAttribute()
    device_id = UnicodeAttribute()
    name = UnicodeAttribute()
    params_json = UnicodeAttribute(default="{}")
    # queued | delivered | succeeded | failed | expired
    status = UnicodeAttribute(default="queued")
    created_by = UnicodeAttribute()
    created_at = UnicodeAttribute()
    # When the command stops being deliverable; ISO 8601 like created_at, so it compares as text.
    expires_at_iso = UnicodeAttribute()
    delivered_at = UnicodeAttribute(null=True)
    completed_at = UnicodeAttribute(null=True)
    result_json = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    # The table's TTL attribute (epoch seconds): the expiry plus the history's month.
    expires_at = NumberAttribute()


class RateCounterModel(DevicesItem):
    """A rate-limit window of this context's limits (kumo.core.rate_limit, ADR 24):
    RATE#<limit>#<sha256 of subject> / WINDOW#<window start>, removed by TTL."""

    hits = NumberAttribute(default=0)
    expires_at = NumberAttribute()
