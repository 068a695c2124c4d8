"""Alert evaluation on ingestion (kumo.telemetry.ingest, right after store_batches):
the readings just stored, against their org's enabled rules.

Per (rule, device) a state item says where the rule stands: nothing, a breach pending until
the rule's duration has passed, or an open alert. Every change of it is one transaction that
checks the state's version and the rule's revision, so the same readings evaluated twice
(a redelivered message) or two batches evaluated at once make each change once: one alert
per (rule, device) at a time, one resolution per alert. Readings no newer than the one behind
the last change are skipped, so a late or repeated reading cannot undo it.
See docs/adr/0013-alert-evaluation-on-ingestion.md.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from aws_lambda_powertools import Logger
from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from kumo.alerts.models import (
    LOOKUP,
    RULE_PREFIX,
    AlertModel,
    AlertRuleModel,
    AlertStateModel,
    LookupModel,
    alert_lookup_key,
    alert_sort_key,
    alerts_by_state_key,
    org_key,
    rule_sort_key,
    rule_states_prefix,
    state_sort_key,
)
from kumo.core import aws, clock
from kumo.core.ids import new_id
from kumo.core.readings import Batch, Reading

logger = Logger(child=True)

# Attempts at one (rule, device) series when other evaluations keep changing its state.
MAX_ATTEMPTS: Final = 5
# Longer than any ingestion function runs (30 s): an announcement still pending after this
# was lost with its invocation, and the next evaluation makes it.
ANNOUNCE_GRACE_MS: Final = 120_000
RESOLVED_RETENTION_SECONDS: Final = 400 * 86_400

_BREACHES: Final[dict[str, Callable[[float, float], bool]]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "neq": operator.ne,
}

type Series = list[tuple[int, float]]


def breaches(comparison: str, value: float, threshold: float) -> bool:
    return _BREACHES[comparison](value, threshold)


@dataclass
class EvaluationReport:
    series: int = 0  # (rule, device) pairs with readings of the rule's metric
    opened: int = 0
    resolved: int = 0


class StateMoved(Exception):
    """Another evaluation, or a change of the rule, got there first: read again, decide again."""


def evaluate_batches(batches: Sequence[Batch]) -> EvaluationReport:
    """Evaluate the readings of `batches` against every enabled rule of their orgs."""
    report = EvaluationReport()
    readings: dict[tuple[str, str], list[Reading]] = defaultdict(list)
    for batch in batches:
        readings[(batch.org_id, batch.device_id)].extend(batch.readings)
    rules_by_org: dict[str, list[AlertRuleModel]] = {}
    for (org_id, device_id), device_readings in readings.items():
        if org_id not in rules_by_org:
            rules_by_org[org_id] = _enabled_rules(org_id)
        for rule in rules_by_org[org_id]:
            if rule.device_id not in (None, device_id):
                continue
            series = sorted(
                (r.ts_ms, r.metrics[rule.metric])
                for r in device_readings
                if rule.metric in r.metrics
            )
            if series:
                report.series += 1
                _evaluate_series(rule, device_id, series, report)
    if report.opened or report.resolved:
        logger.info(
            "alerts evaluated", series=report.series, opened=report.opened, resolved=report.resolved
        )
    return report


def _enabled_rules(org_id: str) -> list[AlertRuleModel]:
    # One Query per org and invocation: an org has at most ALERT_RULES_PER_ORG rules.
    rules = AlertRuleModel.query(org_key(org_id), AlertRuleModel.sk.startswith(RULE_PREFIX))
    return [rule for rule in rules if rule.enabled]


def _reload(rule: AlertRuleModel) -> AlertRuleModel | None:
    try:
        return AlertRuleModel.get(rule.pk, rule.sk, consistent_read=True)
    except DoesNotExist:
        return None


def _load_state(rule: AlertRuleModel, device_id: str) -> AlertStateModel:
    key = (org_key(rule.org_id), state_sort_key(rule.rule_id, device_id))
    try:
        return AlertStateModel.get(*key, consistent_read=True)
    except DoesNotExist:
        return AlertStateModel(
            *key,
            org_id=rule.org_id,
            rule_id=rule.rule_id,
            device_id=device_id,
            version=0,
            rule_revision=rule.revision,
        )


def _evaluate_series(
    rule: AlertRuleModel, device_id: str, series: Series, report: EvaluationReport
) -> None:
    for _ in range(MAX_ATTEMPTS):
        try:
            _walk(rule, _load_state(rule, device_id), series, report)
            return
        except StateMoved:
            fresh = _reload(rule)
            if fresh is None or not fresh.enabled or fresh.metric != rule.metric:
                return  # deleted, disabled or changed so that these readings do not concern it
            if fresh.device_id not in (None, device_id):
                return
            rule = fresh
    # The ingestion batch fails and is retried; the changes made so far stand.
    raise RuntimeError(f"the state of alert rule {rule.rule_id} kept changing")


def _walk(
    rule: AlertRuleModel, state: AlertStateModel, series: Series, report: EvaluationReport
) -> None:
    if int(state.version) and int(state.rule_revision) != int(rule.revision):
        _restart(rule, state, report)
    if state.unannounced_alert_id and int(state.announce_due_ms or 0) <= clock.now() * 1000:
        _announce_late(rule, state)
    duration_ms = int(rule.duration_seconds) * 1000
    threshold = float(rule.threshold)
    newest: tuple[int, float] | None = None
    for ts, value in series:
        if ts <= int(state.decided_at_ms):
            continue
        if breaches(rule.comparison, value, threshold):
            pending_since = ts if state.pending_since_ms is None else int(state.pending_since_ms)
            if state.open_alert_id:
                newest = (ts, value)
            elif ts - pending_since >= duration_ms:
                _open(rule, state, ts, value)
                report.opened += 1
            elif state.pending_since_ms is None:
                state.pending_since_ms, state.decided_at_ms = ts, ts
                _save(rule, state)
        elif state.open_alert_id:
            _resolve(rule, state, ts, value)
            report.resolved += 1
            newest = None
        elif state.pending_since_ms is not None:
            state.pending_since_ms, state.decided_at_ms = None, ts
            _save(rule, state)
    if state.open_alert_id and newest:
        _record_last_value(rule, state.open_alert_id, *newest)


@contextmanager
def _transition(
    rule: AlertRuleModel, state: AlertStateModel, *, opening: bool = False
) -> Iterator[TransactWrite]:
    """Write `state` as the caller changed it, with whatever the caller adds, if and only if
    nobody changed the state since it was read and the rule is still the revision evaluated."""
    expected = int(state.version)
    condition = (
        AlertStateModel.pk.does_not_exist()
        if expected == 0
        else AlertStateModel.version == expected
    )
    if opening:
        condition &= AlertStateModel.open_alert_id.does_not_exist()
    state.version, state.rule_revision = expected + 1, rule.revision
    try:
        with TransactWrite(connection=aws.dynamodb()) as transaction:
            transaction.condition_check(
                AlertRuleModel,
                org_key(rule.org_id),
                rule_sort_key(rule.rule_id),
                condition=AlertRuleModel.revision == rule.revision,
            )
            transaction.save(state, condition=condition)
            yield transaction
    except TransactWriteError as error:
        if error.cause_response_code != "TransactionCanceledException":
            raise
        raise StateMoved from error


def _save(rule: AlertRuleModel, state: AlertStateModel) -> None:
    with _transition(rule, state):
        pass  # the state is the whole change


def _open(rule: AlertRuleModel, state: AlertStateModel, ts: int, value: float) -> None:
    alert_id, now = new_id(), clock.utc_iso()
    triggered_at = clock.utc_iso(ts / 1000)
    alert = AlertModel(
        org_key(rule.org_id),
        alert_sort_key(alert_id),
        alert_id=alert_id,
        org_id=rule.org_id,
        rule_id=rule.rule_id,
        rule_name=rule.name,
        device_id=state.device_id,
        metric=rule.metric,
        comparison=rule.comparison,
        threshold=rule.threshold,
        severity=rule.severity,
        value=value,
        triggered_at=triggered_at,
        state="open",
        opened_at=now,
        last_value=value,
        last_value_at=triggered_at,
        gsi1pk=alerts_by_state_key(rule.org_id, "open"),
        gsi1sk=alert_id,
    )
    state.open_alert_id, state.pending_since_ms, state.decided_at_ms = alert_id, None, ts
    state.unannounced_alert_id = alert_id
    state.announce_due_ms = int(clock.now() * 1000) + ANNOUNCE_GRACE_MS
    with _transition(rule, state, opening=True) as transaction:
        transaction.save(alert, condition=AlertModel.pk.does_not_exist())
        transaction.save(
            LookupModel(alert_lookup_key(alert_id), LOOKUP, org_id=rule.org_id),
            condition=LookupModel.pk.does_not_exist(),
        )
    logger.info("alert opened", alert_id=alert_id, rule_id=rule.rule_id, device_id=state.device_id)
    _announce(rule, state, alert)


def _announce(rule: AlertRuleModel, state: AlertStateModel, alert: AlertModel) -> None:
    """Event and notifications, then the state forgets the alert is unannounced. A failure is
    logged, not raised: the readings are stored, and a later evaluation announces it."""
    # Imported here: most invocations open no alert, and their cold start should not load
    # the tasks, orgs and devices services that notifications need.
    from kumo.alerts import notify

    try:
        notify.announce_triggered(alert, rule)
    except Exception:
        logger.exception("alert announcement failed; a later evaluation retries it")
        return
    try:
        # Not a decision: no version check, but the version moves so that whoever read the
        # state before cannot write the marker back.
        state.update(
            actions=[
                AlertStateModel.unannounced_alert_id.remove(),
                AlertStateModel.announce_due_ms.remove(),
                AlertStateModel.version.add(1),
            ],
            condition=AlertStateModel.unannounced_alert_id == alert.alert_id,
        )
    except UpdateError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise


def _announce_late(rule: AlertRuleModel, state: AlertStateModel) -> None:
    """Take over an announcement whose announcer died: claim it for another grace period."""
    alert_id, due = state.unannounced_alert_id, state.announce_due_ms
    try:
        state.update(
            actions=[
                AlertStateModel.announce_due_ms.set(int(clock.now() * 1000) + ANNOUNCE_GRACE_MS),
                AlertStateModel.version.add(1),
            ],
            condition=(AlertStateModel.unannounced_alert_id == alert_id)
            & (AlertStateModel.announce_due_ms == due),
        )
    except UpdateError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        raise StateMoved from error
    try:
        alert = AlertModel.get(org_key(rule.org_id), alert_sort_key(str(alert_id)))
    except DoesNotExist:
        return
    logger.info("alert announced late", alert_id=alert_id)
    _announce(rule, state, alert)


def _resolve(rule: AlertRuleModel, state: AlertStateModel, ts: int, value: float) -> None:
    alert_id, now = str(state.open_alert_id), clock.utc_iso()
    state.open_alert_id, state.decided_at_ms = None, ts
    if state.unannounced_alert_id == alert_id:
        # Over before anyone heard of it: announcing it now would only be noise.
        state.unannounced_alert_id = state.announce_due_ms = None
    with _transition(rule, state) as transaction:
        _resolve_in(transaction, rule.org_id, alert_id, value=value, reason="back_in_range", at=now)
    logger.info("alert resolved", alert_id=alert_id, rule_id=rule.rule_id)
    _announce_resolved(state, alert_id, value=value, reason="back_in_range", at=now)


def _restart(rule: AlertRuleModel, state: AlertStateModel, report: EvaluationReport) -> None:
    """The state was judged under an older revision of the rule: its alert is resolved and
    evaluation starts again from nothing."""
    alert_id, now = state.open_alert_id, clock.utc_iso()
    state.open_alert_id = state.pending_since_ms = None
    state.unannounced_alert_id = state.announce_due_ms = None
    state.decided_at_ms = 0
    with _transition(rule, state) as transaction:
        if alert_id:
            _resolve_in(
                transaction, rule.org_id, alert_id, value=None, reason="rule_changed", at=now
            )
    if alert_id:
        report.resolved += 1
        _announce_resolved(state, alert_id, value=None, reason="rule_changed", at=now)


def _resolve_in(
    transaction: TransactWrite,
    org_id: str,
    alert_id: str,
    *,
    value: float | None,
    reason: str,
    at: str,
) -> None:
    """Add the resolution of an open or acknowledged alert to `transaction`; the history then
    expires by TTL after RESOLVED_RETENTION_SECONDS."""
    expires_at = int(clock.now()) + RESOLVED_RETENTION_SECONDS
    actions: list[Action] = [
        AlertModel.state.set("resolved"),
        AlertModel.resolved_at.set(at),
        AlertModel.resolved_reason.set(reason),
        AlertModel.gsi1pk.set(alerts_by_state_key(org_id, "resolved")),
        AlertModel.expires_at.set(expires_at),
    ]
    if value is not None:
        actions.append(AlertModel.resolved_value.set(value))
    transaction.update(
        AlertModel(org_key(org_id), alert_sort_key(alert_id)),
        actions=actions,
        condition=AlertModel.state.is_in("open", "acknowledged"),
    )
    transaction.update(
        LookupModel(alert_lookup_key(alert_id), LOOKUP),
        actions=[LookupModel.expires_at.set(expires_at)],
        condition=LookupModel.pk.exists(),
    )


def _announce_resolved(
    state: AlertStateModel, alert_id: str, *, value: float | None, reason: str, at: str
) -> None:
    from kumo.alerts import notify

    try:
        notify.announce_resolved(
            org_id=state.org_id,
            alert_id=alert_id,
            rule_id=state.rule_id,
            device_id=state.device_id,
            value=value,
            reason=reason,
            resolved_at=at,
        )
    except Exception:
        # The resolution stands; failing the ingestion batch would not bring the event back.
        logger.exception("alert.resolved not published", alert_id=alert_id)


def _record_last_value(rule: AlertRuleModel, alert_id: str, ts: int, value: float) -> None:
    at = clock.utc_iso(ts / 1000)
    try:
        AlertModel(org_key(rule.org_id), alert_sort_key(alert_id)).update(
            actions=[AlertModel.last_value.set(value), AlertModel.last_value_at.set(at)],
            # Never moved back by a batch that arrives late.
            condition=AlertModel.state.is_in("open", "acknowledged")
            & (AlertModel.last_value_at.does_not_exist() | (AlertModel.last_value_at < at)),
        )
    except UpdateError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise


def close_rule_states(org_id: str, rule_id: str, *, keep_revision: int | None, reason: str) -> int:
    """After a rule changed (or went): drop its states judged under another revision than
    `keep_revision` (all of them when None) and resolve their alerts. A state that changed
    meanwhile is left to evaluation, which restarts it when it sees the old revision.
    Returns how many alerts were resolved."""
    resolved = 0
    states = AlertStateModel.query(
        org_key(org_id),
        AlertStateModel.sk.startswith(rule_states_prefix(rule_id)),
        consistent_read=True,
    )
    for state in states:
        if keep_revision is not None and int(state.rule_revision) == keep_revision:
            continue
        alert_id, now = state.open_alert_id, clock.utc_iso()
        try:
            with TransactWrite(connection=aws.dynamodb()) as transaction:
                transaction.delete(state, condition=AlertStateModel.version == state.version)
                if alert_id:
                    _resolve_in(transaction, org_id, alert_id, value=None, reason=reason, at=now)
        except TransactWriteError as error:
            if error.cause_response_code != "TransactionCanceledException":
                raise
            logger.info("alert state changed meanwhile", rule_id=rule_id, device=state.device_id)
            continue
        if alert_id:
            resolved += 1
            _announce_resolved(state, alert_id, value=None, reason=reason, at=now)
    return resolved
