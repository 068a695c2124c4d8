"""Alerts table items. Key building for this context lives here and nowhere else.

Access patterns (all GetItem or Query):
  an org's rules             ORG#<org> / begins_with RULE#          (newest first: ids sort by time)
  one rule                   ORG#<org> / RULE#<rule id>
  an org's rule count        ORG#<org> / RULECOUNT                  (the plan limit)
  evaluation state           ORG#<org> / STATE#<rule id>#<device id>
  a rule's states            ORG#<org> / begins_with STATE#<rule id>#
  one alert                  ORG#<org> / ALERT#<alert id>
  an org's alerts            ORG#<org> / begins_with ALERT#         (newest first)
  an org's alerts by state   gsi1: ALERTS#<org>#<state> / <alert id>  (newest first)
  the org of a rule or alert RULEID#<id> / LOOKUP, ALERTID#<id> / LOOKUP
                             (the item routes carry only the id, and a Query on an index
                             could miss what was just written)
"""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from kumo.core.config import get_settings

RULE_PREFIX = "RULE#"
ALERT_PREFIX = "ALERT#"
STATE_PREFIX = "STATE#"
RULE_COUNT = "RULECOUNT"
LOOKUP = "LOOKUP"


def org_key(org_id: str) -> str:
    return f"ORG#{org_id}"


def rule_sort_key(rule_id: str) -> str:
    return f"{RULE_PREFIX}{rule_id}"


def alert_sort_key(alert_id: str) -> str:
    return f"{ALERT_PREFIX}{alert_id}"


def rule_states_prefix(rule_id: str) -> str:
    return f"{STATE_PREFIX}{rule_id}#"


def state_sort_key(rule_id: str, device_id: str) -> str:
    return f"{rule_states_prefix(rule_id)}{device_id}"


def alerts_by_state_key(org_id: str, state: str) -> str:
    return f"ALERTS#{org_id}#{state}"


def rule_lookup_key(rule_id: str) -> str:
    return f"RULEID#{rule_id}"


def alert_lookup_key(alert_id: str) -> str:
    return f"ALERTID#{alert_id}"


class AlertsItem(Model):
    """An item of the alerts table: the table and its key, for every model stored there."""

    class Meta:
        table_name = get_settings().alerts_table
        region = get_settings().region

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class AlertRuleModel(AlertsItem):
    rule_id = UnicodeAttribute()
    org_id = UnicodeAttribute()
    name = UnicodeAttribute()
    metric = UnicodeAttribute()
    # gt | gte | lt | lte | eq | neq: the reading breaches when `value <comparison> threshold`.
    comparison = UnicodeAttribute()
    threshold = NumberAttribute()
    duration_seconds = NumberAttribute(default=0)
    # None: every device of the org.
    device_id = UnicodeAttribute(null=True)
    severity = UnicodeAttribute()
    # {"email": [addresses] | "members" | null, "websocket": bool}
    channels_json = UnicodeAttribute(default="{}")
    enabled = BooleanAttribute(default=True)
    # Moves on every change of the condition or of `enabled`: evaluation state written under
    # another revision is stale, and a transition made with a stale rule is refused.
    revision = NumberAttribute(default=1)
    created_by = UnicodeAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()


class RuleCountModel(AlertsItem):
    sk = UnicodeAttribute(range_key=True, default=RULE_COUNT)
    # Changed in the create and delete transactions: the limit is a condition, not a read.
    rule_count = NumberAttribute(default=0)


class LookupModel(AlertsItem):
    """Which org a rule or an alert id belongs to."""

    sk = UnicodeAttribute(range_key=True, default=LOOKUP)
    org_id = UnicodeAttribute()
    expires_at = NumberAttribute(null=True)


class AlertStateModel(AlertsItem):
    """Where one rule stands for one device. Every write is conditioned on `version`, so two
    evaluations of the same (rule, device) cannot both act on what they read."""

    org_id = UnicodeAttribute()
    rule_id = UnicodeAttribute()
    device_id = UnicodeAttribute()
    version = NumberAttribute(default=0)
    # The rule's revision this state was judged under.
    rule_revision = NumberAttribute(default=1)
    # Time (epoch ms) of the first reading of the current breach, while the rule's duration
    # has not yet passed; None when in range or once the alert is open.
    pending_since_ms = NumberAttribute(null=True)
    open_alert_id = UnicodeAttribute(null=True)
    # Time of the reading behind the last change: older readings (late or redelivered ones)
    # cannot undo it.
    decided_at_ms = NumberAttribute(default=0)
    # An alert opened but not yet announced (event, e-mails): set in the transaction that
    # opens it, removed once announced. Past announce_due_ms (epoch ms), the announcer is
    # presumed dead and the next evaluation announces it.
    unannounced_alert_id = UnicodeAttribute(null=True)
    announce_due_ms = NumberAttribute(null=True)


class AlertsByStateIndex(GlobalSecondaryIndex["AlertModel"]):
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class AlertModel(AlertsItem):
    alert_id = UnicodeAttribute()
    org_id = UnicodeAttribute()
    rule_id = UnicodeAttribute()
    rule_name = UnicodeAttribute()
    device_id = UnicodeAttribute()
    # The rule's condition when the alert opened: a later edit of the rule does not rewrite it.
    metric = UnicodeAttribute()
    comparison = UnicodeAttribute()
    threshold = NumberAttribute()
    severity = UnicodeAttribute()
    value = NumberAttribute()
    # The time of the reading that opened it; opened_at is when Kumo opened it.
    triggered_at = UnicodeAttribute()
    # open | acknowledged | resolved
    state = UnicodeAttribute(default="open")
    opened_at = UnicodeAttribute()
    acknowledged_at = UnicodeAttribute(null=True)
    acknowledged_by = UnicodeAttribute(null=True)
    resolved_at = UnicodeAttribute(null=True)
    resolved_value = NumberAttribute(null=True)
    # back_in_range | rule_changed | rule_disabled | rule_deleted
    resolved_reason = UnicodeAttribute(null=True)
    last_value = NumberAttribute(null=True)
    last_value_at = UnicodeAttribute(null=True)
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    # Set only once resolved: the table's TTL keeps the history this long.
    expires_at = NumberAttribute(null=True)

    by_state = AlertsByStateIndex()
