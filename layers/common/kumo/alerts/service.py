"""Alert rules (/api/v1/alert-rules) and alerts (/api/v1/alerts) for an org's members.

Roles: a viewer reads, a member acknowledges, an admin manages rules. Tenant isolation: the
caller's membership of the rule's or alert's org is loaded first, and a rule or alert of an
org the caller is not in answers the same 404 as one that does not exist. The per-org rule
limit is a condition in the create and delete transactions (as in kumo.tasks.scheduled_tasks).
Evaluation on ingestion lives in kumo.alerts.evaluate; changing and deleting a rule, which
resolves its open alerts, in kumo.alerts.rule_changes.
"""

from __future__ import annotations

import json
from typing import Any, Literal, cast

from aws_lambda_powertools import Logger
from pynamodb.exceptions import DoesNotExist, UpdateError

from kumo.alerts.errors import AlertNotOpen, AlertRuleLimitReached
from kumo.alerts.models import (
    ALERT_PREFIX,
    LOOKUP,
    RULE_COUNT,
    RULE_PREFIX,
    AlertModel,
    AlertRuleModel,
    LookupModel,
    RuleCountModel,
    alert_lookup_key,
    alert_sort_key,
    alerts_by_state_key,
    org_key,
    rule_lookup_key,
    rule_sort_key,
)
from kumo.alerts.schemas import (
    AlertOut,
    AlertRuleOut,
    AlertState,
    Channels,
    ChannelsOut,
    CreateAlertRuleRequest,
)
from kumo.core import clock, dynamo
from kumo.core.config import get_settings
from kumo.core.errors import BadRequest, KumoError, NotFound, invalid
from kumo.core.ids import is_id, new_id
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor
from kumo.devices import service as devices
from kumo.orgs.schemas import OrgRole
from kumo.orgs.service import require_org_role

logger = Logger(child=True)

CHANGED = "The alert rule changed meanwhile; try again."

NO_RULE = "No such alert rule."
_NO_ALERT = "No such alert."
# A change of one of these (or of `enabled`) makes the rule judge differently: its open
# alerts are resolved and evaluation starts again.
CONDITION_FIELDS = frozenset({"metric", "comparison", "threshold", "duration_seconds", "device_id"})


def _org_of(lookup_key: str) -> str | None:
    try:
        return str(LookupModel.get(lookup_key, LOOKUP, consistent_read=True).org_id)
    except DoesNotExist:
        return None


def _member_or_not_found(org_id: str, user_id: str, role: OrgRole, message: str) -> None:
    try:
        require_org_role(org_id, user_id, role)
    except NotFound as error:
        raise NotFound(message) from error


def _paged(cursor: str | None, *, attribute: str, partition: str, prefix: str | None = None) -> Any:
    """The start key of a cursor from this very list: same partition and, for lists that share
    their partition with other items, a sort key of the listed kind."""
    key = decode_cursor(cursor, partition=(attribute, partition))
    if (
        key is not None
        and prefix is not None
        and not key.get("sk", {}).get("S", "").startswith(prefix)
    ):
        raise BadRequest("The cursor belongs to another list.", field="cursor")
    return key


# --- rules --------------------------------------------------------------------------------


def check_device(user_id: str, org_id: str, device_id: str) -> None:
    """The rule's device must be one of the org's; the caller learns no more than that."""
    try:
        device = devices.get_device_for(user_id, device_id, "viewer")
    except NotFound:
        device = None
    if device is None or device.org_id != org_id:
        raise invalid("device_id", "No such device in this organization.")


def channels_json(channels: Channels) -> str:
    email: Any = channels.email
    if isinstance(email, list):
        email = list(dict.fromkeys(email))  # the same address once, in the order given
    return json.dumps({"email": email, "websocket": channels.websocket}, sort_keys=True)


def get_rule_for(user_id: str, rule_id: str, minimum_role: OrgRole) -> AlertRuleModel:
    org_id = _org_of(rule_lookup_key(rule_id)) if is_id(rule_id) else None
    if org_id is None:
        raise NotFound(NO_RULE)
    _member_or_not_found(org_id, user_id, minimum_role, NO_RULE)
    rule = dynamo.get_or_none(
        AlertRuleModel, org_key(org_id), rule_sort_key(rule_id), consistent_read=True
    )
    if rule is None:
        raise NotFound(NO_RULE)
    return rule


def create_rule(*, user_id: str, request: CreateAlertRuleRequest) -> AlertRuleModel:
    require_org_role(request.org_id, user_id, "admin")
    if request.device_id is not None:
        check_device(user_id, request.org_id, request.device_id)
    rule_id, now = new_id(), clock.utc_iso()
    rule = AlertRuleModel(
        org_key(request.org_id),
        rule_sort_key(rule_id),
        rule_id=rule_id,
        org_id=request.org_id,
        name=request.name,
        metric=request.metric,
        comparison=request.comparison,
        threshold=request.threshold,
        duration_seconds=request.duration_seconds,
        device_id=request.device_id,
        severity=request.severity,
        channels_json=channels_json(request.channels),
        enabled=request.enabled,
        revision=1,
        created_by=user_id,
        created_at=now,
        updated_at=now,
    )
    limit = get_settings().alert_rules_per_org

    def explain() -> KumoError:
        return AlertRuleLimitReached(
            f"This organization has reached its limit of {limit} alert rules.", limit=limit
        )

    with dynamo.transaction(explain, changed=CHANGED) as transaction:
        transaction.save(rule, condition=AlertRuleModel.pk.does_not_exist())
        transaction.save(
            LookupModel(rule_lookup_key(rule_id), LOOKUP, org_id=request.org_id),
            condition=LookupModel.pk.does_not_exist(),
        )
        transaction.update(
            RuleCountModel(org_key(request.org_id), RULE_COUNT),
            actions=[RuleCountModel.rule_count.add(1)],
            condition=(RuleCountModel.rule_count < limit)
            | RuleCountModel.rule_count.does_not_exist(),
        )
    logger.info("alert rule created", rule_id=rule_id, org_id=request.org_id)
    return rule


def list_rules(
    *, user_id: str, org_id: str, limit: int | None, cursor: str | None
) -> tuple[list[AlertRuleModel], str | None]:
    """Newest first: ids are time-ordered."""
    require_org_role(org_id, user_id, "viewer")
    partition = org_key(org_id)
    results = AlertRuleModel.query(
        partition,
        AlertRuleModel.sk.startswith(RULE_PREFIX),
        scan_index_forward=False,
        limit=clamp_limit(limit),
        last_evaluated_key=_paged(cursor, attribute="pk", partition=partition, prefix=RULE_PREFIX),
    )
    rules = list(results)
    return rules, encode_cursor(results.last_evaluated_key)


def rule_out(rule: AlertRuleModel) -> AlertRuleOut:
    channels = json.loads(rule.channels_json)
    return AlertRuleOut(
        id=rule.rule_id,
        org_id=rule.org_id,
        name=rule.name,
        metric=rule.metric,
        comparison=cast(Any, rule.comparison),
        threshold=float(rule.threshold),
        duration_seconds=int(rule.duration_seconds),
        device_id=rule.device_id,
        severity=cast(Any, rule.severity),
        channels=ChannelsOut(
            email=channels.get("email"), websocket=bool(channels.get("websocket"))
        ),
        enabled=bool(rule.enabled),
        created_by=rule.created_by,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


# --- alerts -------------------------------------------------------------------------------


def get_alert_for(user_id: str, alert_id: str, minimum_role: OrgRole) -> AlertModel:
    org_id = _org_of(alert_lookup_key(alert_id)) if is_id(alert_id) else None
    if org_id is None:
        raise NotFound(_NO_ALERT)
    _member_or_not_found(org_id, user_id, minimum_role, _NO_ALERT)
    alert = dynamo.get_or_none(
        AlertModel, org_key(org_id), alert_sort_key(alert_id), consistent_read=True
    )
    if alert is None:
        raise NotFound(_NO_ALERT)
    return alert


def list_alerts(
    *,
    user_id: str,
    org_id: str,
    state: AlertState | None,
    limit: int | None,
    cursor: str | None,
) -> tuple[list[AlertModel], str | None]:
    """Newest first, all of them or those in one state."""
    require_org_role(org_id, user_id, "viewer")
    if state is None:
        partition = org_key(org_id)
        results = AlertModel.query(
            partition,
            AlertModel.sk.startswith(ALERT_PREFIX),
            scan_index_forward=False,
            limit=clamp_limit(limit),
            last_evaluated_key=_paged(
                cursor, attribute="pk", partition=partition, prefix=ALERT_PREFIX
            ),
        )
    else:
        partition = alerts_by_state_key(org_id, state)
        results = AlertModel.by_state.query(
            partition,
            scan_index_forward=False,
            limit=clamp_limit(limit),
            last_evaluated_key=_paged(cursor, attribute="gsi1pk", partition=partition),
        )
    alerts = list(results)
    return alerts, encode_cursor(results.last_evaluated_key)


def acknowledge(*, user_id: str, alert_id: str) -> AlertModel:
    """open → acknowledged; an acknowledged or resolved alert answers 409."""
    alert = get_alert_for(user_id, alert_id, "member")
    try:
        alert.update(
            actions=[
                AlertModel.state.set("acknowledged"),
                AlertModel.acknowledged_at.set(clock.utc_iso()),
                AlertModel.acknowledged_by.set(user_id),
                AlertModel.gsi1pk.set(alerts_by_state_key(alert.org_id, "acknowledged")),
            ],
            condition=AlertModel.state == "open",
        )
    except UpdateError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        current = get_alert_for(user_id, alert_id, "member")
        raise AlertNotOpen(
            f"Only an open alert can be acknowledged; this one is {current.state}.",
            state=current.state,
        ) from error
    logger.info("alert acknowledged", alert_id=alert_id, user_id=user_id)
    return alert


def alert_out(alert: AlertModel) -> AlertOut:
    def optional(value: float | None) -> float | None:
        return None if value is None else float(value)

    return AlertOut(
        id=alert.alert_id,
        org_id=alert.org_id,
        rule_id=alert.rule_id,
        rule_name=alert.rule_name,
        device_id=alert.device_id,
        metric=alert.metric,
        comparison=cast(Any, alert.comparison),
        threshold=float(alert.threshold),
        severity=cast(Any, alert.severity),
        value=float(alert.value),
        triggered_at=alert.triggered_at,
        state=cast(Literal["open", "acknowledged", "resolved"], alert.state),
        opened_at=alert.opened_at,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        resolved_at=alert.resolved_at,
        resolved_value=optional(alert.resolved_value),
        resolved_reason=cast(Any, alert.resolved_reason),
        last_value=optional(alert.last_value),
        last_value_at=alert.last_value_at,
    )
