"""The device registry through the gateway: API keys, device-only routes, tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Api, Outbox, signed_up_user


@pytest.fixture(scope="module")
def lab(api: Api, outbox: Outbox) -> dict[str, Any]:
    """An org with one registered device, and a user of another org."""
    owner = signed_up_user(api, outbox, "lab-owner")
    org = api.post("/api/v1/orgs", token=owner["access_token"], json={"name": "Sensor Lab"})
    assert org.status_code == 201, org.text
    device = api.post(
        "/api/v1/devices",
        token=owner["access_token"],
        json={"org_id": org.json()["id"], "name": "greenhouse-1", "type": "thermometer"},
    )
    assert device.status_code == 201, device.text
    stranger = signed_up_user(api, outbox, "lab-stranger")
    return {
        "owner": owner["access_token"],
        "org_id": org.json()["id"],
        "device": device.json(),
        "stranger": stranger["access_token"],
    }


def test_registered_device_shows_its_key_once(api: Api, lab: dict[str, Any]) -> None:
    device = lab["device"]
    assert device["api_key"].startswith("kumo_dk_") and device["status"] == "never_seen"
    again = api.get(f"/api/v1/devices/{device['id']}", token=lab["owner"]).json()
    assert "api_key" not in again and again["key_hint"] == device["key_hint"]
    listed = api.get("/api/v1/devices", token=lab["owner"], params={"org_id": lab["org_id"]})
    assert [d["id"] for d in listed.json()["items"]] == [device["id"]]


def test_device_key_reaches_device_routes_only(api: Api, lab: dict[str, Any]) -> None:
    key = lab["device"]["api_key"]
    assert api.get("/api/v1/device/config", token=key).status_code == 200
    assert api.get("/api/v1/users/me", token=key).status_code == 403
    assert api.get(f"/api/v1/devices/{lab['device']['id']}", token=key).status_code == 403
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert api.get("/api/v1/device/config", token=forged).status_code == 401


def test_desired_config_reaches_the_device_and_its_report_comes_back(
    api: Api, lab: dict[str, Any]
) -> None:
    device_id, key = lab["device"]["id"], lab["device"]["api_key"]
    desired = {"interval_s": 30, "unit": "C"}
    put = api.put(
        f"/api/v1/devices/{device_id}/config", token=lab["owner"], json={"config": desired}
    )
    assert put.status_code == 200, put.text
    seen = api.get("/api/v1/device/config", token=key).json()
    assert seen["config"] == desired
    applied = api.post(
        "/api/v1/device/config/applied",
        token=key,
        json={"version": seen["version"], "config": desired},
    )
    assert applied.status_code == 200, applied.text
    view = api.get(f"/api/v1/devices/{device_id}/config", token=lab["owner"]).json()
    assert view["reported_version"] == seen["version"] and view["reported"] == desired


def test_another_org_sees_no_device(api: Api, lab: dict[str, Any]) -> None:
    device_id = lab["device"]["id"]
    stranger = lab["stranger"]
    answers = [
        api.get(f"/api/v1/devices/{device_id}", token=stranger),
        api.patch(f"/api/v1/devices/{device_id}", token=stranger, json={"name": "mine"}),
        api.post(f"/api/v1/devices/{device_id}/rotate-key", token=stranger),
        api.get(f"/api/v1/devices/{device_id}/latest", token=stranger),
        api.delete(f"/api/v1/devices/{device_id}", token=stranger),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers)
    listed = api.get("/api/v1/devices", token=stranger, params={"org_id": lab["org_id"]})
    assert listed.status_code == 404


def test_rotated_key_replaces_the_old_one_and_delete_revokes(api: Api, lab: dict[str, Any]) -> None:
    created = api.post(
        "/api/v1/devices",
        token=lab["owner"],
        json={"org_id": lab["org_id"], "name": "door-sensor"},
    ).json()
    old_key = created["api_key"]
    rotated = api.post(f"/api/v1/devices/{created['id']}/rotate-key", token=lab["owner"])
    assert rotated.status_code == 200
    assert api.get("/api/v1/device/config", token=old_key).status_code == 401
    new_key = rotated.json()["api_key"]
    assert api.get("/api/v1/device/config", token=new_key).status_code == 200
    assert api.delete(f"/api/v1/devices/{created['id']}", token=lab["owner"]).status_code == 204
    assert api.get("/api/v1/device/config", token=new_key).status_code == 401
