"""Telemetry items. Key building for telemetry lives here and nowhere else.

Access patterns on the telemetry table (all GetItem, BatchGetItem or Query; never a Scan):
  a device's raw readings by time   RAW#<device> / <minute ISO>#s<seq>   (a slot's fragments)
                                    RAW#<device> / <first reading ISO>#<digest>  (before ADR 26)
  a device's rollups               ROLL#<device>#<1m|1h|1d> / <bucket start ISO>    (all metrics)
  a device's latest values          LATEST#<device> / LATEST
  a device's export                 EXPORTS#<device> / EXPORT#<export id>
  a device's exports                EXPORTS#<device> / begins_with EXPORT#    (newest first)
  an export by request key          EXPORTS#<device> / EXPORTKEY#<digest of user and key>
  an org's running exports          EXPORTSLOTS#<org> / begins_with EXPORTSLOT#  (one a slot)

Times in sort keys are UTC ISO-8601 with milliseconds and a Z (`2024-05-01T12:00:00.000Z`):
fixed width, so text order is time order.
  rate-limit windows       RATE#<limit>#<subject hash> / WINDOW#<start>  (kumo.core.rate_limit)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from kumo.core import aws
from kumo.core.config import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

type Resolution = Literal["1m", "1h", "1d"]

RESOLUTIONS: Final[tuple[Resolution, ...]] = ("1m", "1h", "1d")
BUCKET_MS: Final[dict[Resolution, int]] = {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}
DAY_SECONDS: Final = 86_400
# How long each rollup outlives its bucket start: minutes serve dashboards, hours a year of
# history with a month to spare, days the long view (five years, with their leap days).
ROLLUP_RETENTION_SECONDS: Final[dict[Resolution, int]] = {
    "1m": 30 * DAY_SECONDS,
    "1h": 400 * DAY_SECONDS,
    "1d": (5 * 365 + 2) * DAY_SECONDS,
}
# A rollup item holds every metric of one device over one bucket: per metric, its count
# `n_<metric>`, sum `s_<metric>`, min `mn_<metric>` and max `mx_<metric>`.
type RollupKind = Literal["n", "s", "mn", "mx"]
ROLLUP_PREFIXES: Final[dict[RollupKind, str]] = {"n": "n_", "s": "s_", "mn": "mn_", "mx": "mx_"}
LATEST_SK: Final = "LATEST"
# Attributes of the latest-values item: `t` is the newest reading time stored, and each metric
# has `v_<metric>` (its value) and `t_<metric>` (that value's time, epoch ms).
LATEST_NEWEST: Final = "t"
LATEST_VALUE_PREFIX: Final = "v_"
LATEST_TIME_PREFIX: Final = "t_"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def telemetry_table() -> str:
    """The table of readings (a function, not a name in a Meta: infra.access reads both)."""
    return get_settings().telemetry_table


def iso_ms(epoch_ms: int) -> str:
    """Exact to the millisecond: float seconds (clock.utc_iso) can round .123 down to .122."""
    moment = _EPOCH + timedelta(milliseconds=epoch_ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


RAW_PREFIX: Final = "RAW#"
# A raw item spans at most this from its sort key's time (a fragment less than its minute; an
# item of the layout before ADR 26 up to this), so a raw query looks back exactly this far for
# items that start before the range and reach into it.
RAW_SPAN_MS: Final = 10 * 60_000


# A device's readings are kept per slot of this length (ADR 26): the readings of one slot
# live in its fragments, `<slot start ISO>#s<seq>`, numbered from 0 in the order written.
# A writer reads the slot's fragments, stores only the values not stored yet, and takes the
# next number with a conditional put: the number is the slot's version.
RAW_SLOT_MS: Final = 60_000
_FRAGMENT_MARK: Final = "#s"
_ISO_LENGTH: Final = len("2024-05-01T12:00:00.000Z")


def raw_key(device_id: str) -> str:
    return f"{RAW_PREFIX}{device_id}"


def raw_slot(epoch_ms: int) -> int:
    return epoch_ms - epoch_ms % RAW_SLOT_MS


def raw_fragment_key(slot_ms: int, seq: int) -> str:
    # 's' is no hex digit, so no fragment key meets a digest key of the layout before ADR 26.
    return f"{iso_ms(slot_ms)}{_FRAGMENT_MARK}{seq:06d}"


def raw_fragment_seq(sort_key: str) -> int | None:
    """The fragment number of a raw item's sort key, or None for an item keyed by its message
    (the layout before ADR 26)."""
    mark = sort_key[_ISO_LENGTH : _ISO_LENGTH + len(_FRAGMENT_MARK)]
    number = sort_key[_ISO_LENGTH + len(_FRAGMENT_MARK) :]
    return int(number) if mark == _FRAGMENT_MARK and number.isdigit() else None


def raw_sort_key(first_ms: int, digest: str) -> str:
    """The key of a raw item of the layout before ADR 26 (one item per message), still read."""
    return f"{iso_ms(first_ms)}#{digest}"


def raw_sort_bound(epoch_ms: int, *, upper: bool) -> str:
    """A bound for BETWEEN on raw sort keys: '~' sorts after '#<digest>', so `upper` takes
    in every item whose first reading is at exactly that millisecond."""
    return iso_ms(epoch_ms) + ("~" if upper else "")


def rollup_key(device_id: str, resolution: Resolution) -> str:
    return f"ROLL#{device_id}#{resolution}"


def rollup_attribute(kind: RollupKind, metric: str) -> str:
    """The flat attribute holding one aggregate of one metric in a rollup item, such as
    `n_temperature`. The prefixes are fixed and none is a prefix of another, so two (kind,
    metric) pairs never share a name whatever characters the metric name holds, and no name
    meets pk, sk or expires_at."""
    return ROLLUP_PREFIXES[kind] + metric


def bucket_start(epoch_ms: int, resolution: Resolution) -> int:
    return epoch_ms - epoch_ms % BUCKET_MS[resolution]


def bucket_sort_key(bucket_ms: int) -> str:
    return iso_ms(bucket_ms)


def latest_key(device_id: str) -> str:
    return f"LATEST#{device_id}"


def client() -> DynamoDBClient:
    # The botocore client of the cached PynamoDB connection: one per container. The writes use
    # it directly because they need what PynamoDB's TransactWrite and Model.update drop: the
    # response's ConsumedCapacity, and (for rollups and latest values) attribute names per
    # metric, which no model can declare.
    return cast("DynamoDBClient", aws.dynamodb().client)


def number(item: Mapping[str, Any] | None, name: str) -> float | None:
    """A number attribute of a low-level item, or None where the item or attribute is missing."""
    if not item or name not in item:
        return None
    return float(item[name]["N"])


def compact(value: float) -> float | int:
    # 40 rather than 40.0 in the packed JSON: two bytes a value, and the same float back.
    return int(value) if value.is_integer() else value


def number_text(value: float) -> str:
    return json.dumps(compact(value))


class TelemetryItem(Model):
    """An item of the telemetry table: the table and its key, for every model stored there."""

    class Meta:
        table_name = get_settings().telemetry_table
        region = get_settings().region

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class RawReadingsModel(TelemetryItem):
    """Readings packed into one item: a fragment of a device's slot (the values one write
    added to it), or, written before ADR 26, one message (or part of one). One write per
    message and slot instead of one per reading."""

    # Compact JSON, sorted by time: [[ts_ms, {"temperature": 21.5, ...}], ...].
    r = UnicodeAttribute()
    n = NumberAttribute()
    last_ms = NumberAttribute()
    org_id = UnicodeAttribute()
    expires_at = NumberAttribute()


class RollupModel(TelemetryItem):
    """Count, sum, min and max of every metric of one device over one bucket: one item per
    device, resolution and bucket, so a message updates three rollup items whatever its metric
    count. The per-metric attributes (`rollup_attribute`) have names only known at run time,
    so they are read and written with the low-level client; this model declares the key and
    the TTL. Count and sum change only in the transaction that stores the raw items they
    count; min and max are set there only when new, and lowered or raised after it."""

    expires_at = NumberAttribute()


# --- exports -----------------------------------------------------------------------------------

EXPORT_PREFIX: Final = "EXPORT#"
EXPORT_SLOT_PREFIX: Final = "EXPORTSLOT#"


def export_partition(device_id: str) -> str:
    return f"EXPORTS#{device_id}"


def export_slot_partition(org_id: str) -> str:
    return f"EXPORTSLOTS#{org_id}"


def export_sort_key(export_id: str) -> str:
    return f"{EXPORT_PREFIX}{export_id}"


def export_slot_key(slot: int) -> str:
    return f"{EXPORT_SLOT_PREFIX}{slot}"


def export_request_key(digest: str) -> str:
    # "EXPORTKEY#" does not begin with "EXPORT#", so a device's export list skips these.
    return f"EXPORTKEY#{digest}"


class ExportModel(TelemetryItem):
    """A CSV export of a device's telemetry (kumo.telemetry.exports), kept a week by the TTL."""

    export_id = UnicodeAttribute()
    org_id = UnicodeAttribute()
    device_id = UnicodeAttribute()
    start_ms = NumberAttribute()
    end_ms = NumberAttribute()
    resolution = UnicodeAttribute()
    metrics_json = UnicodeAttribute()
    # queued | running | ready | failed
    status = UnicodeAttribute(default="queued")
    created_by = UnicodeAttribute()
    created_at = UnicodeAttribute()
    # Epoch ms after which an unfinished export counts as failed and its org slot is free.
    deadline_ms = NumberAttribute()
    slot = NumberAttribute()
    object_key = UnicodeAttribute()
    # The build holding the export: its id and when its lease lapses (epoch ms).
    run_id = UnicodeAttribute(null=True)
    lease_until_ms = NumberAttribute(null=True)
    attempts = NumberAttribute(default=0)
    started_at = UnicodeAttribute(null=True)
    finished_at = UnicodeAttribute(null=True)
    row_count = NumberAttribute(null=True)
    byte_size = NumberAttribute(null=True)
    error = UnicodeAttribute(null=True)
    # The table's TTL attribute (epoch seconds): a week after the request, like the file.
    expires_at = NumberAttribute()


class ExportSlotModel(TelemetryItem):
    """One of an org's running-export slots, held by a queued or running export."""

    export_id = UnicodeAttribute()
    device_id = UnicodeAttribute()
    # Past the export's deadline the slot may be taken over, whoever forgot to free it.
    deadline_ms = NumberAttribute()
    expires_at = NumberAttribute()


class ExportRequestKeyModel(TelemetryItem):
    """An Idempotency-Key already used for an export of this device by this user."""

    export_id = UnicodeAttribute()
    # A digest of the request body: the same key with another body is refused.
    fingerprint = UnicodeAttribute()
    expires_at = NumberAttribute()


class RateCounterModel(TelemetryItem):
    """A rate-limit window of this context's limits (kumo.core.rate_limit, ADR 24):
    RATE#<limit>#<sha256 of subject> / WINDOW#<window start>, removed by TTL."""

    hits = NumberAttribute(default=0)
    expires_at = NumberAttribute()
