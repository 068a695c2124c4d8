"""Per-org raw telemetry retention: PATCH /api/v1/orgs/{org_id}, GET shows it, the cached
lookup the devices context calls, and ingestion writing it into new raw items."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kumo.core import clock
from kumo.core.ids import new_id
from kumo.devices.schemas import RegisterDeviceRequest
from kumo.orgs import service
from kumo.orgs.models import META, OrgModel, org_key
from kumo.telemetry import ingest
from kumo.telemetry.models import RawReadingsModel, raw_key

from tests.support import factories
from tests.support.factories import new_member, new_principal

pytestmark = pytest.mark.usefixtures("aws")

PROBLEM = "urn:kumo:problem:"


@pytest.fixture(autouse=True)
def empty_retention_cache() -> Iterator[None]:
    service._retention_cache.clear()
    yield
    service._retention_cache.clear()


def new_org(owner: dict[str, str]) -> str:
    return factories.new_org(owner["subject_id"], owner["email"])


def patch_org(call_api: Any, org_id: str, user: dict[str, str], body: Any) -> dict[str, Any]:
    response: dict[str, Any] = call_api(
        "orgs/update_org",
        "PATCH",
        f"/api/v1/orgs/{org_id}",
        resource="/api/v1/orgs/{org_id}",
        path_parameters={"org_id": org_id},
        body=body,
        principal=user,
    )
    return response


def get_org(call_api: Any, org_id: str, user: dict[str, str]) -> dict[str, Any]:
    response: dict[str, Any] = call_api(
        "orgs/get_org",
        "GET",
        f"/api/v1/orgs/{org_id}",
        resource="/api/v1/orgs/{org_id}",
        path_parameters={"org_id": org_id},
        principal=user,
    )
    return response


def test_get_org_shows_the_default_retention_of_seven_days(call_api):
    # Given a new org
    owner = new_principal()
    org_id = new_org(owner)

    # When its owner reads it
    response = get_org(call_api, org_id, owner)

    # Then the retention is the default
    assert response["statusCode"] == 200, response
    assert response["json"]["telemetry_retention_days"] == 7


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_update_org_by_owner_or_admin_sets_retention_and_name(call_api, role):
    # Given an org and a caller with the role
    owner = new_principal()
    org_id = new_org(owner)
    caller = owner
    if role == "admin":
        caller = new_member(org_id, "admin")

    # When they set a 30-day retention and a new name
    response = patch_org(
        call_api, org_id, caller, {"name": "Acme Labs", "telemetry_retention_days": 30}
    )

    # Then both are answered and stored
    assert response["statusCode"] == 200, response
    assert response["json"]["telemetry_retention_days"] == 30
    assert response["json"]["name"] == "Acme Labs"
    assert get_org(call_api, org_id, owner)["json"]["telemetry_retention_days"] == 30


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_update_org_by_member_or_viewer_answers_403_and_changes_nothing(call_api, role):
    # Given an org and a member or viewer
    owner = new_principal()
    org_id = new_org(owner)
    caller = new_member(org_id, role)

    # When they try to change the retention
    response = patch_org(call_api, org_id, caller, {"telemetry_retention_days": 30})

    # Then it is forbidden and nothing changed
    assert response["statusCode"] == 403, response
    assert get_org(call_api, org_id, owner)["json"]["telemetry_retention_days"] == 7


def test_update_org_of_another_org_answers_404(call_api):
    # Given two orgs with their owners
    org_id = new_org(new_principal())
    stranger = new_principal()
    new_org(stranger)

    # When the stranger patches the first org
    response = patch_org(call_api, org_id, stranger, {"telemetry_retention_days": 1})

    # Then it does not exist for them
    assert response["statusCode"] == 404, response
    assert OrgModel.get(org_key(org_id), META).telemetry_retention_days is None


@pytest.mark.parametrize(
    "body",
    [
        {"telemetry_retention_days": 0},
        {"telemetry_retention_days": 366},
        {"telemetry_retention_days": "30"},
        {"telemetry_retention_days": 7.5},
        {"telemetry_retention_days": True},
        {"plan": "gold"},
        {"name": ""},
    ],
    ids=["zero", "over-a-year", "string", "fraction", "boolean", "unknown", "no-name"],
)
def test_update_org_rejects_bad_body_with_422_and_changes_nothing(call_api, body):
    # Given an org
    owner = new_principal()
    org_id = new_org(owner)

    # When its owner sends a bad body
    response = patch_org(call_api, org_id, owner, body)

    # Then it is a validation problem naming the field, and the org is unchanged
    assert response["statusCode"] == 422, response
    assert response["json"]["type"] == PROBLEM + "validation-error"
    org = OrgModel.get(org_key(org_id), META)
    assert (org.name, org.telemetry_retention_days) == ("Acme", None)


def test_update_org_with_nothing_to_change_answers_the_org_as_it_is(call_api):
    # Given an org
    owner = new_principal()
    org_id = new_org(owner)

    # When its owner sends a PATCH that changes no field
    response = patch_org(call_api, org_id, owner, {})

    # Then the org is answered, unchanged
    assert response["statusCode"] == 200, response
    assert response["json"]["name"] == "Acme"
    org = OrgModel.get(org_key(org_id), META)
    assert (org.name, org.telemetry_retention_days) == ("Acme", None)


def test_update_org_422_names_the_retention_field(call_api):
    owner = new_principal()
    org_id = new_org(owner)

    response = patch_org(call_api, org_id, owner, {"telemetry_retention_days": 400})

    fields = [error["field"] for error in response["json"]["errors"]]
    assert any("telemetry_retention_days" in field for field in fields), response["json"]


def test_retention_lookup_is_cached_for_five_minutes(monkeypatch):
    # Given an org with a 30-day retention, looked up once
    owner = new_principal()
    org_id = new_org(owner)
    service.update_org(
        org_id=org_id, user_id=owner["subject_id"], name=None, telemetry_retention_days=30
    )
    service._retention_cache.clear()
    moment = 1_000_000.0
    monkeypatch.setattr(clock, "now", lambda: moment)
    assert service.telemetry_retention_days(org_id) == 30
    reads: list[str] = []
    real_get = OrgModel.get.__func__  # type: ignore[attr-defined]

    def counting_get(cls: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(args[0])
        return real_get(cls, *args, **kwargs)

    monkeypatch.setattr(OrgModel, "get", classmethod(counting_get))
    # When another container changes it and this one asks again within five minutes
    OrgModel(org_key(org_id), META).update(actions=[OrgModel.telemetry_retention_days.set(2)])

    # Then the cached value answers without a read, and a read happens after five minutes
    monkeypatch.setattr(clock, "now", lambda: moment + 299)
    assert service.telemetry_retention_days(org_id) == 30
    assert reads == []
    monkeypatch.setattr(clock, "now", lambda: moment + 301)
    assert service.telemetry_retention_days(org_id) == 2
    assert len(reads) == 1


def test_retention_change_in_this_container_is_seen_at_once():
    owner = new_principal()
    org_id = new_org(owner)
    assert service.telemetry_retention_days(org_id) == 7

    service.update_org(
        org_id=org_id, user_id=owner["subject_id"], name=None, telemetry_retention_days=3
    )

    assert service.telemetry_retention_days(org_id) == 3


def test_retention_of_a_missing_org_is_the_default():
    assert service.telemetry_retention_days(new_id()) == 7


def test_ingestion_gives_new_raw_items_the_orgs_retention():
    # Given an org with a 2-day retention and one of its devices
    from kumo.devices import service as devices

    owner = new_principal()
    org_id = new_org(owner)
    service.update_org(
        org_id=org_id, user_id=owner["subject_id"], name=None, telemetry_retention_days=2
    )
    device = devices.register_device(
        user_id=owner["subject_id"], request=RegisterDeviceRequest(org_id=org_id, name="probe")
    )[0]
    ts = int(clock.now() * 1000) - 60_000

    # When the device posts a reading
    ingest.ingest_http(
        org_id=org_id,
        device_id=device.device_id,
        payload={"ts": ts, "metrics": {"temp": 20}},
        size=64,
    )

    # Then its raw item expires two days after the reading
    (item,) = RawReadingsModel.query(raw_key(device.device_id))
    assert item.expires_at == ts // 1000 + 2 * 86_400
    assert item.org_id == org_id
