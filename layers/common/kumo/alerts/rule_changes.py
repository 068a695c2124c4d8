"""PATCH and DELETE /api/v1/alert-rules/{rule_id}: changing a rule's condition, disabling or
deleting it resolves its open alerts, which announces them (pushes, e-mails, events).

Apart from kumo.alerts.service so that the functions that only read rules and alerts import no
announcing code, and need neither its settings nor its permissions.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from pynamodb.exceptions import PutError

from kumo.alerts.evaluate import close_rule_states
from kumo.alerts.models import (
    LOOKUP,
    RULE_COUNT,
    AlertRuleModel,
    LookupModel,
    RuleCountModel,
    org_key,
    rule_lookup_key,
)
from kumo.alerts.schemas import Channels, UpdateAlertRuleRequest
from kumo.alerts.service import (
    CHANGED,
    CONDITION_FIELDS,
    NO_RULE,
    channels_json,
    check_device,
    get_rule_for,
)
from kumo.core import clock, dynamo
from kumo.core.errors import Conflict, NotFound, invalid

logger = Logger(child=True)


def update_rule(*, user_id: str, rule_id: str, request: UpdateAlertRuleRequest) -> AlertRuleModel:
    rule = get_rule_for(user_id, rule_id, "admin")
    sent = request.model_fields_set
    for field in sent & request.not_null:
        if getattr(request, field) is None:
            raise invalid(field, f"{field} cannot be null.")
    if "device_id" in sent and request.device_id is not None:
        check_device(user_id, rule.org_id, request.device_id)
    before = {field: getattr(rule, field) for field in (*CONDITION_FIELDS, "enabled")}
    for field in sent - {"channels"}:
        setattr(rule, field, getattr(request, field))
    if "channels" in sent:
        rule.channels_json = channels_json(request.channels or Channels())
    changed = any(getattr(rule, field) != value for field, value in before.items())
    if changed:
        rule.revision = int(rule.revision) + 1
    previous_updated_at, rule.updated_at = rule.updated_at, clock.utc_iso()
    try:
        # Guarded by updated_at: a concurrent edit makes this one fail rather than vanish.
        rule.save(condition=AlertRuleModel.updated_at == previous_updated_at)
    except PutError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        raise Conflict("The alert rule changed meanwhile; try again.") from error
    logger.info("alert rule updated", rule_id=rule_id, fields=sorted(sent))
    if changed:
        reason = "rule_changed" if rule.enabled else "rule_disabled"
        close_rule_states(rule.org_id, rule_id, keep_revision=int(rule.revision), reason=reason)
    return rule


def delete_rule(*, user_id: str, rule_id: str) -> None:
    """The rule's open alerts are resolved; alerts stay as history until their TTL."""
    rule = get_rule_for(user_id, rule_id, "admin")
    with dynamo.transaction(lambda: NotFound(NO_RULE), changed=CHANGED) as transaction:
        transaction.delete(rule, condition=AlertRuleModel.pk.exists())
        transaction.delete(LookupModel(rule_lookup_key(rule_id), LOOKUP))
        transaction.update(
            RuleCountModel(org_key(rule.org_id), RULE_COUNT),
            actions=[RuleCountModel.rule_count.add(-1)],
        )
    close_rule_states(rule.org_id, rule_id, keep_revision=None, reason="rule_deleted")
    logger.info("alert rule deleted", rule_id=rule_id)
