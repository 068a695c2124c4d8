"""Alerts under moto: rule CRUD and its checks, evaluation on ingestion (comparisons,
durations, scope, open → acknowledged → resolved), notifications and the event bus,
conditional transitions under repeated or concurrent evaluation, tenant isolation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from kumo.alerts import evaluate, notify
from kumo.alerts.models import (
    RULE_COUNT,
    AlertModel,
    AlertRuleModel,
    AlertStateModel,
    RuleCountModel,
    alert_sort_key,
    org_key,
    rule_sort_key,
    state_sort_key,
)
from kumo.core import clock
from kumo.core.ids import new_id
from kumo.tasks.models import EmailTaskModel, task_key
from kumo.telemetry import ingest
from kumo.telemetry.contract import Batch, Reading

from tests.support.aws import bus_recorder
from tests.support.factories import Fleet, add_member, new_fleet
from tests.unit.conftest import QUEUE_URL

pytestmark = pytest.mark.usefixtures("aws")

BUS = "kumo-test"
PROBLEM = "urn:kumo:problem:"
T0 = 1_714_564_800_000  # 2024-05-01T12:00:00Z in epoch ms
SECOND = 1000


# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture
def org() -> Fleet:
    return new_fleet("Acme", devices=2)


@pytest.fixture
def bus_events() -> Callable[[], list[dict[str, Any]]]:
    """Every kumo.alerts event on the bus."""
    return bus_recorder("kumo.alerts", BUS)


def mailed() -> list[EmailTaskModel]:
    """The e-mail tasks queued since the last call."""
    sqs = boto3.client("sqs")
    tasks = []
    while messages := sqs.receive_message(QueueUrl=QUEUE_URL, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            sqs.delete_message(QueueUrl=QUEUE_URL, ReceiptHandle=message["ReceiptHandle"])
            task_id = json.loads(message["Body"])["task_id"]
            tasks.append(EmailTaskModel.get(task_key(task_id), "TASK"))
    return tasks


def rule_body(org: Fleet, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "org_id": org.org_id,
        "name": "Too hot",
        "metric": "temp",
        "comparison": "gt",
        "threshold": 30,
    }
    return {**body, **overrides}


def create_rule(call_api: Any, org: Fleet, **overrides: Any) -> dict[str, Any]:
    response = call_api(
        "alerts/create_alert_rule",
        "POST",
        "/api/v1/alert-rules",
        body=rule_body(org, **overrides),
        principal=org.owner,
    )
    assert response["statusCode"] == 201, response
    body: dict[str, Any] = response["json"]
    return body


def rule_call(call_api: Any, method: str, rule_id: str, principal: Any, **kwargs: Any) -> Any:
    function = {
        "GET": "get_alert_rule",
        "PATCH": "update_alert_rule",
        "DELETE": "delete_alert_rule",
    }
    return call_api(
        f"alerts/{function[method]}",
        method,
        f"/api/v1/alert-rules/{rule_id}",
        resource="/api/v1/alert-rules/{rule_id}",
        path_parameters={"rule_id": rule_id},
        principal=principal,
        **kwargs,
    )


def get_alert(call_api: Any, alert_id: str, principal: Any) -> Any:
    return call_api(
        "alerts/get_alert",
        "GET",
        f"/api/v1/alerts/{alert_id}",
        resource="/api/v1/alerts/{alert_id}",
        path_parameters={"alert_id": alert_id},
        principal=principal,
    )


def acknowledge(call_api: Any, alert_id: str, principal: Any) -> Any:
    return call_api(
        "alerts/acknowledge_alert",
        "POST",
        f"/api/v1/alerts/{alert_id}/acknowledge",
        resource="/api/v1/alerts/{alert_id}/acknowledge",
        path_parameters={"alert_id": alert_id},
        principal=principal,
    )


def list_alerts(call_api: Any, org: Fleet, principal: Any, **query: str) -> Any:
    return call_api(
        "alerts/list_alerts",
        "GET",
        "/api/v1/alerts",
        query={"org_id": org.org_id, **query},
        principal=principal,
    )


def readings(org: Fleet, *values: tuple[int, float], device: int = 0, metric: str = "temp") -> None:
    """Evaluate one batch of (ms after T0, value) readings of one device."""
    batch = Batch(
        org.org_id,
        org.devices[device],
        tuple(Reading(T0 + at, {metric: value}) for at, value in values),
    )
    evaluate.evaluate_batches([batch])


def alerts_of(org: Fleet) -> list[AlertModel]:
    return list(AlertModel.query(org_key(org.org_id), AlertModel.sk.startswith("ALERT#")))


def the_alert(org: Fleet) -> AlertModel:
    (alert,) = alerts_of(org)
    return alert


def problem_type(response: dict[str, Any]) -> str:
    return str(response["json"]["type"]).removeprefix(PROBLEM)


def error_fields(response: dict[str, Any]) -> set[str]:
    return {error["field"] for error in response["json"]["errors"]}


# --- rules: create, read, list ------------------------------------------------------------


def test_create_alert_rule_answers_201_with_defaults(call_api, org):
    # Given an org owner / When they create a rule with only the required fields
    rule = create_rule(call_api, org)

    # Then it covers the whole org, warns, notifies nobody, and is enabled
    assert rule["org_id"] == org.org_id and rule["device_id"] is None
    assert (rule["severity"], rule["duration_seconds"], rule["enabled"]) == ("warning", 0, True)
    assert rule["channels"] == {"email": None, "websocket": False}
    assert rule["created_by"] == org.owner["subject_id"]


def test_get_alert_rule_answers_the_stored_rule(call_api, org):
    # Given a rule with e-mail recipients (one given twice)
    created = create_rule(
        call_api, org, channels={"email": ["A@Example.com", "a@example.com", "b@example.com"]}
    )

    # When a viewer of the org reads it
    response = rule_call(call_api, "GET", created["id"], org.member("viewer"))

    # Then it is the same rule, each address once and normalised
    assert response["statusCode"] == 200, response
    assert response["json"] == created
    assert created["channels"]["email"] == ["a@example.com", "b@example.com"]


def test_list_alert_rules_answers_newest_first_with_a_cursor(call_api, org):
    # Given three rules
    ids = [create_rule(call_api, org, name=f"Rule {n}")["id"] for n in range(3)]

    # When listing two per page, then following the cursor
    first = call_api(
        "alerts/list_alert_rules",
        "GET",
        "/api/v1/alert-rules",
        query={"org_id": org.org_id, "limit": "2"},
        principal=org.owner,
    )
    second = call_api(
        "alerts/list_alert_rules",
        "GET",
        "/api/v1/alert-rules",
        query={"org_id": org.org_id, "limit": "2", "cursor": first["json"]["next_cursor"]},
        principal=org.owner,
    )

    # Then every rule comes once, newest first
    listed = [r["id"] for r in first["json"]["items"] + second["json"]["items"]]
    assert listed == list(reversed(ids))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"comparison": "above"}, "comparison"),
        ({"threshold": "30"}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"threshold": 1e16}, "threshold"),
        # Below DynamoDB's smallest number: the write would fail (the fuzzer found a 500).
        ({"threshold": -9.05942974308703e-270}, "threshold"),
        ({"metric": "1temp"}, "metric"),
        ({"duration_seconds": 86_401}, "duration_seconds"),
        ({"duration_seconds": -1}, "duration_seconds"),
        ({"severity": "fatal"}, "severity"),
        ({"channels": {"email": [f"u{n}@example.com" for n in range(11)]}}, "channels.email"),
        ({"channels": {"email": ["not-an-address"]}}, "channels.email"),
        ({"channels": {"email": "everyone"}}, "channels.email"),
        ({"channels": {"sms": True}}, "channels.sms"),
        ({"org_id": "short"}, "org_id"),
        ({"colour": "red"}, "colour"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_create_alert_rule_rejects_a_bad_field_with_422(call_api, org, overrides, field):
    # Given a body with one bad field / When creating a rule with it
    response = call_api(
        "alerts/create_alert_rule",
        "POST",
        "/api/v1/alert-rules",
        body=rule_body(org, **overrides),
        principal=org.owner,
    )

    # Then it is a validation problem that names the field
    assert response["statusCode"] == 422, response
    assert problem_type(response) == "validation-error"
    assert any(f.startswith(field) for f in error_fields(response)), response["json"]["errors"]


def test_create_alert_rule_refuses_a_device_of_another_org_with_422(call_api, org):
    # Given a device of another org whose owner also administers this one
    other = new_fleet("Other", devices=2)
    add_member(org.org_id, other.owner_id, other.owner["email"], "admin")

    # When they create a rule in this org for the other org's device
    response = call_api(
        "alerts/create_alert_rule",
        "POST",
        "/api/v1/alert-rules",
        body=rule_body(org, device_id=other.devices[0]),
        principal=other.owner,
    )

    # Then the device is refused as not one of the org's
    assert response["statusCode"] == 422, response
    assert error_fields(response) == {"device_id"}


def test_create_alert_rule_needs_the_admin_role(call_api, org):
    # Given a plain member / When they create a rule
    response = call_api(
        "alerts/create_alert_rule",
        "POST",
        "/api/v1/alert-rules",
        body=rule_body(org),
        principal=org.member("member"),
    )

    # Then it is forbidden
    assert response["statusCode"] == 403, response


def test_create_alert_rule_at_the_org_limit_answers_409(call_api, org):
    # Given an org at its limit of 100 rules
    RuleCountModel(org_key(org.org_id), RULE_COUNT, rule_count=100).save()

    # When creating one more
    response = call_api(
        "alerts/create_alert_rule",
        "POST",
        "/api/v1/alert-rules",
        body=rule_body(org),
        principal=org.owner,
    )

    # Then it is refused with the limit named
    assert response["statusCode"] == 409, response
    assert problem_type(response) == "alert-rule-limit-reached"
    assert response["json"]["limit"] == 100


def test_delete_alert_rule_frees_its_place_under_the_limit(call_api, org):
    # Given an org one rule below the limit, which then creates its last one
    RuleCountModel(org_key(org.org_id), RULE_COUNT, rule_count=99).save()
    last = create_rule(call_api, org)

    # When it deletes that rule and creates another
    deleted = rule_call(call_api, "DELETE", last["id"], org.owner)
    again = call_api(
        "alerts/create_alert_rule",
        "POST",
        "/api/v1/alert-rules",
        body=rule_body(org),
        principal=org.owner,
    )

    # Then both succeed, and the deleted rule is gone
    assert (deleted["statusCode"], again["statusCode"]) == (204, 201)
    assert rule_call(call_api, "GET", last["id"], org.owner)["statusCode"] == 404


def test_update_alert_rule_changes_only_the_fields_sent(call_api, org):
    # Given a rule for one device
    rule = create_rule(call_api, org, device_id=org.devices[0], severity="critical")

    # When the admin renames it and widens it to the whole org
    response = rule_call(
        call_api, "PATCH", rule["id"], org.owner, body={"name": "Hot", "device_id": None}
    )

    # Then those change, the rest stays
    assert response["statusCode"] == 200, response
    updated = response["json"]
    assert (updated["name"], updated["device_id"], updated["severity"]) == (
        "Hot",
        None,
        "critical",
    )


def test_update_alert_rule_refuses_null_for_a_required_field(call_api, org):
    rule = create_rule(call_api, org)
    response = rule_call(call_api, "PATCH", rule["id"], org.owner, body={"threshold": None})
    assert response["statusCode"] == 422, response
    assert error_fields(response) == {"threshold"}


# --- tenant isolation ---------------------------------------------------------------------


def test_rule_of_another_org_answers_404_everywhere(call_api, org):
    # Given a rule of an org the stranger does not belong to
    rule = create_rule(call_api, org)
    stranger = new_fleet("Elsewhere", devices=2).owner

    # When the stranger reads, changes or deletes it
    answers = [
        rule_call(call_api, "GET", rule["id"], stranger),
        rule_call(call_api, "PATCH", rule["id"], stranger, body={"name": "Mine"}),
        rule_call(call_api, "DELETE", rule["id"], stranger),
    ]

    # Then each is the 404 of a rule that does not exist
    assert [a["statusCode"] for a in answers] == [404, 404, 404]
    assert rule_call(call_api, "GET", new_id(), org.owner)["statusCode"] == 404


def test_alert_of_another_org_answers_404_and_its_list_is_not_shown(call_api, org):
    # Given an open alert in an org
    create_rule(call_api, org)
    readings(org, (0, 35))
    alert_id = the_alert(org).alert_id
    stranger = new_fleet("Elsewhere", devices=2).owner

    # When a stranger reads it, acknowledges it and lists the org's alerts
    read = get_alert(call_api, alert_id, stranger)
    acked = acknowledge(call_api, alert_id, stranger)
    listed = list_alerts(call_api, org, stranger)

    # Then all three answer 404, and the alert is still open
    assert [read["statusCode"], acked["statusCode"], listed["statusCode"]] == [404, 404, 404]
    assert the_alert(org).state == "open"


def test_rules_of_one_org_never_evaluate_another_orgs_readings(call_api, org):
    # Given a rule in one org and a breaching reading in another
    create_rule(call_api, org)
    other = new_fleet("Other", devices=2)

    # When the other org's device reports
    readings(other, (0, 99))

    # Then neither org has an alert
    assert alerts_of(org) == [] and alerts_of(other) == []


# --- evaluation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comparison", "breaching", "in_range"),
    [
        ("gt", 31, 30),
        ("gte", 30, 29.5),
        ("lt", 29, 30),
        ("lte", 30, 30.5),
        ("eq", 30, 30.1),
        ("neq", 12, 30),
    ],
)
def test_evaluation_opens_an_alert_only_for_a_breaching_value(
    call_api, org, comparison, breaching, in_range
):
    # Given a rule `temp <comparison> 30`
    create_rule(call_api, org, comparison=comparison)

    # When an in-range reading comes, then a breaching one
    readings(org, (0, in_range))
    assert alerts_of(org) == []
    readings(org, (SECOND, breaching))

    # Then one alert is open with the breaching value and the rule's condition
    alert = the_alert(org)
    assert (alert.state, alert.value, alert.comparison, alert.threshold) == (
        "open",
        breaching,
        comparison,
        30,
    )
    assert alert.triggered_at == clock.utc_iso((T0 + SECOND) / 1000)


def test_evaluation_waits_for_the_duration_before_opening(call_api, org):
    # Given a rule that must hold for a minute
    create_rule(call_api, org, duration_seconds=60)

    # When it breaches for 59 s
    readings(org, (0, 35), (30 * SECOND, 36), (59 * SECOND, 37))

    # Then nothing is open yet; at 60 s the alert opens with the value then
    assert alerts_of(org) == []
    readings(org, (60 * SECOND, 38))
    assert the_alert(org).value == 38


def test_evaluation_restarts_the_duration_after_an_in_range_reading(call_api, org):
    # Given a rule that must hold for a minute, breached, then back in range
    create_rule(call_api, org, duration_seconds=60)
    readings(org, (0, 35), (30 * SECOND, 20))

    # When it breaches again, 60 s after the first breach but only 30 s after the second
    readings(org, (45 * SECOND, 35), (75 * SECOND, 36))

    # Then nothing opens until 60 s after the second breach
    assert alerts_of(org) == []
    readings(org, (105 * SECOND, 37))
    assert len(alerts_of(org)) == 1


def test_org_wide_rule_opens_one_alert_per_device(call_api, org):
    create_rule(call_api, org)
    readings(org, (0, 35), device=0)
    readings(org, (0, 36), device=1)
    assert sorted(a.device_id for a in alerts_of(org)) == sorted(org.devices)


def test_device_rule_ignores_the_orgs_other_devices(call_api, org):
    create_rule(call_api, org, device_id=org.devices[0])
    readings(org, (0, 99), device=1)
    assert alerts_of(org) == []
    readings(org, (0, 99), device=0)
    assert the_alert(org).device_id == org.devices[0]


def test_evaluation_ignores_other_metrics_and_disabled_rules(call_api, org):
    create_rule(call_api, org, enabled=False)
    create_rule(call_api, org, metric="humidity")
    readings(org, (0, 99))
    assert alerts_of(org) == []


def test_alert_goes_open_acknowledged_resolved(call_api, org, bus_events):
    # Given an open alert
    create_rule(call_api, org)
    readings(org, (0, 35))
    alert_id = the_alert(org).alert_id
    member = org.member("member")

    # When a member acknowledges it, and a reading comes back in range
    acked = acknowledge(call_api, alert_id, member)
    readings(org, (SECOND, 25))

    # Then it was acknowledged by them, and is now resolved with the value back in range
    assert acked["statusCode"] == 200, acked
    assert acked["json"]["state"] == "acknowledged"
    assert acked["json"]["acknowledged_by"] == member["subject_id"]
    resolved = get_alert(call_api, alert_id, org.member("viewer"))["json"]
    assert (resolved["state"], resolved["resolved_value"], resolved["resolved_reason"]) == (
        "resolved",
        25,
        "back_in_range",
    )
    assert resolved["acknowledged_at"] and resolved["resolved_at"]
    types = [event["detail-type"] for event in bus_events()]
    assert types == ["alert.triggered", "alert.resolved"]


def test_open_alert_resolves_automatically_and_keeps_history_400_days(call_api, org):
    # Given an open alert
    create_rule(call_api, org)
    readings(org, (0, 35))

    # When the value comes back in range
    readings(org, (SECOND, 29.5))

    # Then it is resolved, and expires by TTL 400 days later
    alert = the_alert(org)
    assert (alert.state, alert.resolved_value, alert.resolved_reason) == (
        "resolved",
        29.5,
        "back_in_range",
    )
    assert alert.expires_at == pytest.approx(clock.now() + 400 * 86_400, abs=60)


def test_next_breach_after_resolution_opens_a_new_alert(call_api, org):
    create_rule(call_api, org)
    readings(org, (0, 35), (SECOND, 25), (2 * SECOND, 36))
    states = sorted(a.state for a in alerts_of(org))
    assert states == ["open", "resolved"]


def test_acknowledge_answers_409_unless_the_alert_is_open(call_api, org):
    # Given an alert that was acknowledged once
    create_rule(call_api, org)
    readings(org, (0, 35))
    alert_id = the_alert(org).alert_id
    assert acknowledge(call_api, alert_id, org.owner)["statusCode"] == 200

    # When acknowledged again, and once resolved
    again = acknowledge(call_api, alert_id, org.owner)
    readings(org, (SECOND, 20))
    resolved = acknowledge(call_api, alert_id, org.owner)

    # Then both are conflicts naming the state
    assert (again["statusCode"], resolved["statusCode"]) == (409, 409)
    assert problem_type(again) == "alert-not-open"
    assert (again["json"]["state"], resolved["json"]["state"]) == ("acknowledged", "resolved")


def test_acknowledge_needs_the_member_role(call_api, org):
    create_rule(call_api, org)
    readings(org, (0, 35))
    response = acknowledge(call_api, the_alert(org).alert_id, org.member("viewer"))
    assert response["statusCode"] == 403, response


def test_list_alerts_filters_by_state_newest_first(call_api, org):
    # Given a resolved alert, then two open ones (one per device)
    create_rule(call_api, org)
    readings(org, (0, 35), (SECOND, 20), device=0)
    readings(org, (2 * SECOND, 35), device=0)
    readings(org, (2 * SECOND, 35), device=1)

    # When listing open alerts, then all of them
    open_ = list_alerts(call_api, org, org.member("viewer"), state="open")["json"]["items"]
    every = list_alerts(call_api, org, org.owner)["json"]["items"]

    # Then open lists the two open ones newest first, and all lists three
    assert [a["state"] for a in open_] == ["open", "open"]
    assert [a["device_id"] for a in open_] == [org.devices[1], org.devices[0]]
    assert [a["id"] for a in every] == sorted((a["id"] for a in every), reverse=True)
    assert len(every) == 3


def test_list_alerts_refuses_a_cursor_from_the_rules_list(call_api, org):
    # Given a cursor of the org's rule list (same partition, other items)
    for n in range(2):
        create_rule(call_api, org, name=f"Rule {n}")
    rules = call_api(
        "alerts/list_alert_rules",
        "GET",
        "/api/v1/alert-rules",
        query={"org_id": org.org_id, "limit": "1"},
        principal=org.owner,
    )

    # When it is used on the alert list
    response = list_alerts(call_api, org, org.owner, cursor=rules["json"]["next_cursor"])

    # Then it is a bad request, not a database error
    assert response["statusCode"] == 400, response


def test_list_alerts_rejects_an_unknown_state(call_api, org):
    response = list_alerts(call_api, org, org.owner, state="closed")
    assert response["statusCode"] == 422, response


def test_open_alert_tracks_the_newest_value(call_api, org):
    create_rule(call_api, org)
    readings(org, (0, 35), (2 * SECOND, 40))
    readings(org, (SECOND, 38))  # late: older than the newest value
    alert = the_alert(org)
    assert (alert.value, alert.last_value) == (35, 40)
    assert alert.last_value_at == clock.utc_iso((T0 + 2 * SECOND) / 1000)


def test_late_in_range_reading_does_not_resolve_a_newer_alert(call_api, org):
    # Given an alert opened by a reading at 10 s
    create_rule(call_api, org)
    readings(org, (10 * SECOND, 35))

    # When an in-range reading taken at 5 s arrives late
    readings(org, (5 * SECOND, 20))

    # Then the alert stays open
    assert the_alert(org).state == "open"


# --- duplicates and concurrency -----------------------------------------------------------


def test_repeated_evaluation_of_the_same_readings_opens_one_alert(call_api, org, bus_events):
    # Given a rule / When the same breaching batch is evaluated three times
    create_rule(call_api, org)
    for _ in range(3):
        readings(org, (0, 35), (SECOND, 36))

    # Then there is one alert, announced once
    assert len(alerts_of(org)) == 1
    assert [e["detail-type"] for e in bus_events()] == ["alert.triggered"]


def test_evaluation_from_a_stale_state_cannot_open_a_second_alert(call_api, org):
    # Given a state read before another evaluation opened the alert
    rule = create_rule(call_api, org)
    model = AlertRuleModel.get(org_key(org.org_id), rule_sort_key(rule["id"]))
    stale = evaluate._load_state(model, org.devices[0])
    readings(org, (0, 35))

    # When evaluation goes on from the stale state
    with pytest.raises(evaluate.StateMoved):
        evaluate._walk(model, stale, [(T0 + SECOND, 36.0)], evaluate.EvaluationReport())

    # Then the transition is refused: still one alert
    assert len(alerts_of(org)) == 1


def test_evaluation_retries_from_the_current_state_after_a_concurrent_change(
    call_api, org, monkeypatch
):
    # Given the first state read is stale (another evaluation opened the alert since)
    rule = create_rule(call_api, org)
    model = AlertRuleModel.get(org_key(org.org_id), rule_sort_key(rule["id"]))
    stale = evaluate._load_state(model, org.devices[0])
    readings(org, (0, 35))
    real = evaluate._load_state
    loads = iter([stale])
    monkeypatch.setattr(evaluate, "_load_state", lambda r, d: next(loads, None) or real(r, d))

    # When a later breaching reading is evaluated
    readings(org, (SECOND, 36))

    # Then the retry read the current state: still one alert, now holding the newer value
    alert = the_alert(org)
    assert (alert.state, alert.value, alert.last_value) == ("open", 35, 36)


# --- notifications ------------------------------------------------------------------------


def test_triggered_alert_is_published_on_the_bus(call_api, org, bus_events):
    # Given a critical rule for one device
    rule = create_rule(call_api, org, device_id=org.devices[0], severity="critical")

    # When it breaches
    readings(org, (0, 35))

    # Then alert.triggered carries the alert, org, device, rule, value and threshold
    (event,) = bus_events()
    assert (event["source"], event["detail-type"]) == ("kumo.alerts", "alert.triggered")
    detail = event["detail"]
    alert = the_alert(org)
    assert detail["alert_id"] == alert.alert_id and detail["org_id"] == org.org_id
    assert (detail["device_id"], detail["rule_id"]) == (org.devices[0], rule["id"])
    assert (detail["metric"], detail["value"], detail["threshold"]) == ("temp", 35, 30)
    assert (detail["severity"], detail["opened_at"]) == ("critical", alert.opened_at)


def test_triggered_alert_mails_each_listed_address(call_api, org):
    # Given a rule that mails two addresses
    addresses = ["ops@example.com", "oncall@example.com"]
    create_rule(call_api, org, threshold=30.5, channels={"email": addresses})
    mailed()

    # When it breaches
    readings(org, (0, 35))

    # Then each address gets an alert_notification with the alert's facts
    tasks = mailed()
    assert sorted(t.recipient for t in tasks) == sorted(addresses)
    alert = the_alert(org)
    params = tasks[0].params
    assert tasks[0].template == "alert_notification"
    assert params == {
        "display_name": tasks[0].recipient,
        "device_name": "probe-0",
        "metric": "temp",
        "value": 35,
        "comparison": ">",
        "threshold": 30.5,
        "severity": "warning",
        "triggered_at": clock.utc_iso(T0 / 1000),
        "link": f"https://app.kumo.test/alerts/{alert.alert_id}",
        "org_name": "Acme",
    }


def test_members_channel_mails_the_owners_and_admins_only(call_api, org):
    # Given an admin, a member and a viewer besides the owner, and a rule for "members"
    admin, member, viewer = org.member("admin"), org.member("member"), org.member("viewer")
    create_rule(call_api, org, channels={"email": "members"})
    mailed()

    # When it breaches
    readings(org, (0, 35))

    # Then the owner and the admin are mailed, nobody else
    recipients = sorted(t.recipient for t in mailed())
    assert recipients == sorted([org.owner["email"], admin["email"]])
    assert member["email"] not in recipients and viewer["email"] not in recipients


def test_websocket_channel_calls_its_hook(call_api, org, monkeypatch):
    pushed: list[str] = []
    monkeypatch.setattr(notify, "notify_websocket", lambda alert: pushed.append(alert.alert_id))
    create_rule(call_api, org, channels={"websocket": True})
    readings(org, (0, 35))
    assert pushed == [the_alert(org).alert_id]


def test_failed_announcement_is_made_by_a_later_evaluation(call_api, org, monkeypatch):
    # Given the first announcement fails (the bus refuses it)
    create_rule(call_api, org, channels={"email": ["ops@example.com"]})
    mailed()
    real = notify.announce_triggered
    calls: list[str] = []

    def flaky(alert: AlertModel, rule: AlertRuleModel) -> None:
        calls.append(alert.alert_id)
        if len(calls) == 1:
            raise RuntimeError("bus unavailable")
        real(alert, rule)

    monkeypatch.setattr(notify, "announce_triggered", flaky)
    readings(org, (0, 35))
    assert mailed() == []

    # When readings come within the grace period, then after it
    readings(org, (SECOND, 36))
    assert len(calls) == 1
    now = clock.now()
    monkeypatch.setattr(clock, "now", lambda: now + evaluate.ANNOUNCE_GRACE_MS / 1000 + 1)
    readings(org, (2 * SECOND, 37))

    # Then it was announced once, by the later evaluation, and is no longer pending
    assert [t.recipient for t in mailed()] == ["ops@example.com"]
    alert = the_alert(org)
    state = AlertStateModel.get(org_key(org.org_id), state_sort_key(alert.rule_id, org.devices[0]))
    assert state.unannounced_alert_id is None
    readings(org, (3 * SECOND, 38))
    assert len(calls) == 2


# --- rule changes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"threshold": 50}, "rule_changed"), ({"enabled": False}, "rule_disabled")],
)
def test_changing_the_condition_resolves_open_alerts(call_api, org, bus_events, change, reason):
    # Given an open alert
    rule = create_rule(call_api, org)
    readings(org, (0, 35))

    # When the admin changes the rule's condition (or disables it)
    response = rule_call(call_api, "PATCH", rule["id"], org.owner, body=change)

    # Then the alert is resolved for that reason, and the bus hears of it
    assert response["statusCode"] == 200, response
    alert = the_alert(org)
    assert (alert.state, alert.resolved_reason, alert.resolved_value) == ("resolved", reason, None)
    assert [e["detail-type"] for e in bus_events()] == ["alert.triggered", "alert.resolved"]


def test_renaming_a_rule_keeps_its_open_alert(call_api, org):
    rule = create_rule(call_api, org)
    readings(org, (0, 35))
    rule_call(call_api, "PATCH", rule["id"], org.owner, body={"name": "Renamed"})
    readings(org, (SECOND, 36))
    assert the_alert(org).state == "open"


def test_new_threshold_applies_to_the_next_readings(call_api, org):
    # Given a rule whose threshold was raised from 30 to 50
    rule = create_rule(call_api, org)
    rule_call(call_api, "PATCH", rule["id"], org.owner, body={"threshold": 50})

    # When 40 arrives, then 55
    readings(org, (0, 40))
    assert alerts_of(org) == []
    readings(org, (SECOND, 55))

    # Then the alert opened on 55, judged against 50
    alert = the_alert(org)
    assert (alert.value, alert.threshold) == (55, 50)


def test_deleting_a_rule_resolves_its_open_alerts(call_api, org):
    rule = create_rule(call_api, org)
    readings(org, (0, 35))
    assert rule_call(call_api, "DELETE", rule["id"], org.owner)["statusCode"] == 204
    alert = the_alert(org)
    assert (alert.state, alert.resolved_reason) == ("resolved", "rule_deleted")
    readings(org, (SECOND, 99))
    assert len(alerts_of(org)) == 1


def test_stale_state_of_an_older_rule_revision_is_restarted_by_evaluation(call_api, org):
    # Given an open alert whose state the rule change could not close (it changed meanwhile)
    rule = create_rule(call_api, org)
    readings(org, (0, 35))
    model = AlertRuleModel.get(org_key(org.org_id), rule_sort_key(rule["id"]))
    model.update(actions=[AlertRuleModel.revision.add(1)])

    # When the device reports again, still breaching
    readings(org, (SECOND, 36))

    # Then the old alert is resolved as judged by the old rule, and a new one opened
    by_state = {a.state: a for a in alerts_of(org)}
    assert by_state["resolved"].resolved_reason == "rule_changed"
    assert by_state["open"].value == 36


# --- the ingestion path -------------------------------------------------------------------


def test_http_ingestion_evaluates_the_stored_readings(call_api, org):
    # Given a rule / When a device posts a breaching reading over HTTP
    create_rule(call_api, org)
    ingest.ingest_http(
        org_id=org.org_id,
        device_id=org.devices[0],
        payload={"metrics": {"temp": 41}},
        size=30,
    )

    # Then the alert is open
    assert the_alert(org).value == 41


def test_queue_ingestion_evaluates_every_device_of_the_batch(call_api, org):
    create_rule(call_api, org)
    records = [
        {
            "messageId": str(n),
            "body": json.dumps(
                {"org_id": org.org_id, "device_id": device, "metrics": {"temp": 31 + n}}
            ),
        }
        for n, device in enumerate(org.devices)
    ]
    ingest.ingest_records(records)
    assert sorted(a.device_id for a in alerts_of(org)) == sorted(org.devices)


def test_alert_items_are_keyed_under_the_org(call_api, org):
    create_rule(call_api, org)
    readings(org, (0, 35))
    alert = the_alert(org)
    assert (alert.pk, alert.sk) == (org_key(org.org_id), alert_sort_key(alert.alert_id))
    assert alert.gsi1pk == f"ALERTS#{org.org_id}#open" and alert.expires_at is None
