"""Alerts end to end on the local stack: a rule, a device crossing its threshold over HTTP,
the alert in the API and its e-mail in the outbox, acknowledgement, automatic resolution,
and another organization that sees none of it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Api, Outbox, signed_up_user, unique_email


@pytest.fixture(scope="module")
def site(api: Api, outbox: Outbox) -> dict[str, Any]:
    owner = signed_up_user(api, outbox, "alerts")
    token = owner["access_token"]
    org_id = api.post("/api/v1/orgs", token=token, json={"name": "Greenhouse"}).json()["id"]
    device = api.post(
        "/api/v1/devices", token=token, json={"org_id": org_id, "name": "bench-probe"}
    ).json()
    outsider = signed_up_user(api, outbox, "stranger")["access_token"]
    return {"token": token, "org_id": org_id, "device": device, "outsider": outsider}


def _post_temp(api: Api, device: dict[str, Any], value: float) -> None:
    answer = api.post(
        "/api/v1/device/readings", token=device["api_key"], json={"metrics": {"temp": value}}
    )
    assert answer.status_code == 202, answer.text


def _alerts(api: Api, token: str, org_id: str, state: str) -> list[dict[str, Any]]:
    answer = api.get("/api/v1/alerts", token=token, params={"org_id": org_id, "state": state})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_alert_opens_mails_is_acknowledged_and_resolves(
    api: Api, outbox: Outbox, site: dict[str, Any]
) -> None:
    # Given a rule temp > 30 that mails an address
    token, org_id, device = site["token"], site["org_id"], site["device"]
    address = unique_email("oncall")
    created = api.post(
        "/api/v1/alert-rules",
        token=token,
        json={
            "org_id": org_id,
            "name": "Too hot",
            "metric": "temp",
            "comparison": "gt",
            "threshold": 30,
            "severity": "critical",
            "channels": {"email": [address]},
        },
    )
    assert created.status_code == 201, created.text
    rule = created.json()

    # When the device reports 25, then 35
    _post_temp(api, device, 25)
    assert _alerts(api, token, org_id, "open") == []
    _post_temp(api, device, 35)

    # Then one alert is open, and its e-mail reached the address
    (alert,) = _alerts(api, token, org_id, "open")
    assert (alert["rule_id"], alert["device_id"], alert["value"]) == (
        rule["id"],
        device["id"],
        35,
    )
    mail = outbox.wait_for(address, "temp 35")
    assert "bench-probe" in mail["Subject"] and "Critical" in mail["Subject"]
    assert f"/alerts/{alert['id']}" in mail["BodyText"]

    # When it is acknowledged
    acked = api.post(f"/api/v1/alerts/{alert['id']}/acknowledge", token=token)
    assert acked.status_code == 200, acked.text
    assert acked.json()["state"] == "acknowledged"
    assert [a["id"] for a in _alerts(api, token, org_id, "acknowledged")] == [alert["id"]]
    again = api.post(f"/api/v1/alerts/{alert['id']}/acknowledge", token=token)
    assert again.status_code == 409, again.text

    # And the value comes back in range
    _post_temp(api, device, 20)

    # Then it is resolved with that value
    resolved = api.get(f"/api/v1/alerts/{alert['id']}", token=token)
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert (body["state"], body["resolved_value"], body["resolved_reason"]) == (
        "resolved",
        20,
        "back_in_range",
    )
    assert _alerts(api, token, org_id, "open") == []
    assert [a["id"] for a in _alerts(api, token, org_id, "resolved")] == [alert["id"]]


def test_another_orgs_user_sees_no_rule_and_no_alert(api: Api, site: dict[str, Any]) -> None:
    # Given a rule and an alert in the site's org
    token, org_id, device = site["token"], site["org_id"], site["device"]
    rule = api.post(
        "/api/v1/alert-rules",
        token=token,
        json={
            "org_id": org_id,
            "name": "Humid",
            "metric": "humidity",
            "comparison": "gte",
            "threshold": 80,
        },
    ).json()
    answer = api.post(
        "/api/v1/device/readings", token=device["api_key"], json={"metrics": {"humidity": 90}}
    )
    assert answer.status_code == 202, answer.text
    alert = next(a for a in _alerts(api, token, org_id, "open") if a["rule_id"] == rule["id"])
    outsider = site["outsider"]

    # When a user of another org asks for them
    answers = [
        api.get(f"/api/v1/alert-rules/{rule['id']}", token=outsider),
        api.patch(f"/api/v1/alert-rules/{rule['id']}", token=outsider, json={"name": "x"}),
        api.get("/api/v1/alert-rules", token=outsider, params={"org_id": org_id}),
        api.get(f"/api/v1/alerts/{alert['id']}", token=outsider),
        api.post(f"/api/v1/alerts/{alert['id']}/acknowledge", token=outsider),
        api.get("/api/v1/alerts", token=outsider, params={"org_id": org_id}),
    ]

    # Then every answer is a 404, and their own org lists nothing
    assert [a.status_code for a in answers] == [404] * len(answers)
    own = api.post("/api/v1/orgs", token=outsider, json={"name": "Elsewhere"}).json()["id"]
    listed = api.get("/api/v1/alerts", token=outsider, params={"org_id": own})
    assert listed.status_code == 200 and listed.json()["items"] == []
    rules = api.get("/api/v1/alert-rules", token=outsider, params={"org_id": own})
    assert rules.status_code == 200 and rules.json()["items"] == []


def test_invalid_rule_answers_422_naming_the_fields(api: Api, site: dict[str, Any]) -> None:
    answer = api.post(
        "/api/v1/alert-rules",
        token=site["token"],
        json={
            "org_id": site["org_id"],
            "name": "Broken",
            "metric": "temp",
            "comparison": "above",
            "threshold": "hot",
            "duration_seconds": 90_000,
        },
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    fields = {error["field"] for error in answer.json()["errors"]}
    assert {"comparison", "threshold", "duration_seconds"} <= fields
