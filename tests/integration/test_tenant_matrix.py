"""Tenant isolation, generated from docs/openapi.json.

Every operation that names a tenant's id (in its path, in its query, or in its body) is called
with the real ids of tenant A: by the owner of another org, and, for writes, by a viewer of A's
own org. Each call must be refused (403 or 404, a problem body that shows none of A's data)
and A's data must be unchanged afterwards. An operation added to the spec is covered the moment
it is there; one whose ids, query or body the generator cannot fill fails until it is described
in IDS, QUERIES or BODIES below.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from infra.local.receiver import Receiver
from tests.integration.conftest import (
    DEADLINE_SECONDS,
    Api,
    Outbox,
    signed_up_user,
    unique_email,
)

SPEC = json.loads((Path(__file__).parents[2] / "docs" / "openapi.json").read_text())
METHODS = ("get", "post", "put", "patch", "delete")
WRITES = {"post", "put", "patch", "delete"}
ORG_NAME = "Matrix Tenant A"
DEVICE_NAME = "matrix-probe-a"
CHANNEL_NAME = "matrix-private-a"
CHANNEL_PASSWORD = "matrix channel 42"

# Who fills each id an operation names: the generator's vocabulary. `{name}` in a query or a
# body is filled the same way.
IDS = {
    "org_id",
    "device_id",
    "rule_id",
    "alert_id",
    "command_id",
    "export_id",
    "task_id",
    "invitation_id",
    "user_id",
    "media_id",
    "channel_id",
    "seq",
    "sketch_id",
}
# Query parameters an operation needs before it looks at the id (else it answers 422 first).
QUERIES: dict[str, dict[str, str]] = {
    "GET /api/v1/alert-rules": {"org_id": "{org_id}"},
    "GET /api/v1/alerts": {"org_id": "{org_id}"},
    "GET /api/v1/devices": {"org_id": "{org_id}"},
    "GET /api/v1/devices/{device_id}/readings": {"metric": "temp"},
    "GET /api/v1/media": {"org_id": "{org_id}"},
    "GET /api/v1/media/usage": {"org_id": "{org_id}"},
    "GET /api/v1/chat/channels": {"org_id": "{org_id}"},
}
NOW = datetime.now(UTC)
# A valid body for each write that takes one, so the refusal is about the tenant, not the body.
BODIES: dict[str, dict[str, Any]] = {
    "PATCH /api/v1/admin/users/{user_id}": {"role": "admin"},
    "POST /api/v1/alert-rules": {
        "org_id": "{org_id}",
        "device_id": "{device_id}",
        "name": "intruder",
        "metric": "temp",
        "comparison": "gt",
        "threshold": 1,
    },
    "PATCH /api/v1/alert-rules/{rule_id}": {"name": "taken over"},
    "POST /api/v1/device/commands/{command_id}/result": {"status": "succeeded"},
    "POST /api/v1/devices": {"org_id": "{org_id}", "name": "intruder"},
    "PATCH /api/v1/devices/{device_id}": {"name": "taken over"},
    "POST /api/v1/devices/{device_id}/commands": {"name": "reboot"},
    "PUT /api/v1/devices/{device_id}/config": {"config": {"taken": True}},
    "POST /api/v1/devices/{device_id}/exports": {
        "from": (NOW - timedelta(hours=1)).isoformat(),
        "to": NOW.isoformat(),
        "resolution": "1m",
    },
    "PATCH /api/v1/orgs/{org_id}": {"name": "taken over"},
    "POST /api/v1/orgs/{org_id}/invitations": {"email": "{intruder_email}", "role": "admin"},
    "PATCH /api/v1/orgs/{org_id}/members/{user_id}": {"role": "admin"},
    "PATCH /api/v1/scheduled-tasks/{task_id}": {"name": "taken over"},
    "POST /api/v1/media/uploads": {
        "org_id": "{org_id}",
        "purpose": "attachment",
        "file_name": "intruder.png",
        "content_type": "image/png",
        "size": 100,
    },
    "POST /api/v1/chat/channels": {"org_id": "{org_id}", "name": "intruder"},
    "PATCH /api/v1/chat/channels/{channel_id}": {"name": "taken-over", "password": None},
    "POST /api/v1/chat/channels/{channel_id}/invitations": {"user_id": "{user_id}"},
    # The right password: the channel's visibility, not the password, keeps them out.
    "POST /api/v1/chat/channels/{channel_id}/join": {"password": CHANNEL_PASSWORD},
    "POST /api/v1/chat/channels/{channel_id}/messages": {"text": "intruder"},
    "PATCH /api/v1/chat/channels/{channel_id}/messages/{seq}": {"text": "taken over"},
    "POST /api/v1/chat/channels/{channel_id}/read": {"seq": 1},
    "POST /api/v1/chat/channels/{channel_id}/sketches": {"title": "intruder"},
    # Not an id in the path, but a reference to tenant A's file in the body.
    "PATCH /api/v1/users/me": {"avatar_media_id": "{media_id}"},
}
# Operations that refuse another's id in their body as invalid input (422 on that field),
# the way every body reference to something the caller cannot use is refused.
REFUSED_AS_INVALID = {"PATCH /api/v1/users/me": "avatar_media_id"}
# Writes a viewer of the org may make on purpose.
VIEWER_MAY = {"POST /api/v1/orgs/{org_id}/leave": "any member may leave an org"}


@dataclass
class Tenant:
    ids: dict[str, str] = field(default_factory=dict)
    owner: str = ""  # access token
    viewer: str = ""
    device_key: str = ""


@dataclass(frozen=True)
class Operation:
    method: str
    path: str

    @property
    def key(self) -> str:
        return f"{self.method.upper()} {self.path}"

    def __str__(self) -> str:
        return self.key


def _ids_in(value: Any) -> set[str]:
    text = json.dumps(value)
    return {name for name in IDS if "{" + name + "}" in text}


def _operations() -> list[tuple[Operation, set[str]]]:
    """Every operation of the spec with the tenant ids it names."""
    found = []
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            op = Operation(method, path)
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            names |= {
                p["name"]
                for p in operation.get("parameters", [])
                if p["in"] == "query" and p["name"].endswith("_id")
            }
            names |= _ids_in(QUERIES.get(op.key, {})) | _ids_in(BODIES.get(op.key, {}))
            found.append((op, names))
    return found


OPERATIONS = _operations()
WITH_IDS = [(op, names) for op, names in OPERATIONS if names]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    text = json.dumps(value)
    for name, real in ids.items():
        text = text.replace("{" + name + "}", real)
    return json.loads(text)


def test_the_generator_can_fill_every_operation_that_names_an_id() -> None:
    # Given every operation of the spec that names an id
    problems = []
    for op, names in WITH_IDS:
        operation = SPEC["paths"][op.path][op.method]
        # Then each id is one the generator knows, and a body is described where one is needed
        unknown = names - IDS
        if unknown:
            problems.append(f"{op}: describe how to fill {sorted(unknown)} in IDS")
        if "requestBody" in operation and op.key not in BODIES and op.method in WRITES:
            required = operation["requestBody"].get("required", False)
            if required:
                problems.append(f"{op}: describe a valid body in BODIES")
    assert not problems, "\n".join(problems)
    # And the matrix is not empty: the spec has routes with ids
    assert len(WITH_IDS) >= 40, [str(op) for op, _ in WITH_IDS]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _join(api: Api, outbox: Outbox, owner: str, org_id: str, role: str) -> dict[str, Any]:
    person = signed_up_user(api, outbox, f"matrix-{role}")
    invite = {"email": person["email"], "role": role}
    _ok(api.post(f"/api/v1/orgs/{org_id}/invitations", token=owner, json=invite), 201)
    token = Outbox.token(outbox.wait_for(person["email"], "invited you"))
    accept = {"token": token}
    _ok(api.post("/api/v1/invitations/accept", token=person["access_token"], json=accept))
    return person


def _private_channel(api: Api, owner: str, org_id: str, member: dict[str, Any]) -> str:
    """A private channel with a password, the member invited and joined, and a message with
    the org's picture."""
    body = {
        "org_id": org_id,
        "name": CHANNEL_NAME,
        "visibility": "private",
        "password": CHANNEL_PASSWORD,
    }
    channel_id: str = _ok(api.post("/api/v1/chat/channels", token=owner, json=body), 201)["id"]
    chat = f"/api/v1/chat/channels/{channel_id}"
    invite = {"user_id": member["id"]}
    invited = api.post(f"{chat}/invitations", token=owner, json=invite)
    assert invited.status_code == 204, invited.text
    _ok(api.post(f"{chat}/join", token=member["access_token"], json={}))
    return channel_id


def _ready_file(api: Api, token: str, org_id: str) -> str:
    """A picture of the org's, uploaded with its form and judged ready."""
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(picture, "PNG")
    data = picture.getvalue()
    asked = {
        "org_id": org_id,
        "purpose": "attachment",
        "file_name": "matrix.png",
        "content_type": "image/png",
        "size": len(data),
    }
    upload = _ok(api.post("/api/v1/media/uploads", token=token, json=asked), 201)
    form = upload["upload"]
    sent = requests.post(
        form["url"], data=form["fields"], files={"file": ("matrix.png", data)}, timeout=30
    )
    assert sent.status_code == 204, sent.text
    media_id: str = upload["media"]["id"]
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if _ok(api.get(f"/api/v1/media/{media_id}", token=token))["state"] == "ready":
            return media_id
        time.sleep(0.2)
    raise AssertionError(f"file {media_id} not judged within {DEADLINE_SECONDS} s")


@pytest.fixture(scope="module")
def tenant_a(api: Api, outbox: Outbox, receiver: Receiver) -> Tenant:
    """An org with one of everything: members, a pending invitation, a device with a command,
    an export and an open alert, an alert rule, and its owner's scheduled task."""
    owner = signed_up_user(api, outbox, "matrix-owner")
    token = owner["access_token"]
    org_id = _ok(api.post("/api/v1/orgs", token=token, json={"name": ORG_NAME}), 201)["id"]
    member = _join(api, outbox, token, org_id, "member")
    viewer = _join(api, outbox, token, org_id, "viewer")
    invited = {"email": unique_email("matrix-pending"), "role": "member"}
    invitation = api.post(f"/api/v1/orgs/{org_id}/invitations", token=token, json=invited)
    device_body = {"org_id": org_id, "name": DEVICE_NAME}
    device = _ok(api.post("/api/v1/devices", token=token, json=device_body), 201)
    rule_body = {
        "org_id": org_id,
        "name": "matrix rule",
        "metric": "temp",
        "comparison": "gt",
        "threshold": 30,
    }
    rule = _ok(api.post("/api/v1/alert-rules", token=token, json=rule_body), 201)
    readings = {"metrics": {"temp": 35}}
    _ok(api.post("/api/v1/device/readings", token=device["api_key"], json=readings), 202)
    alerts = api.get("/api/v1/alerts", token=token, params={"org_id": org_id, "state": "open"})
    (alert,) = _ok(alerts)["items"]
    command_body = {"name": "reboot"}
    command = api.post(f"/api/v1/devices/{device['id']}/commands", token=token, json=command_body)
    export_body = BODIES["POST /api/v1/devices/{device_id}/exports"]
    export = api.post(f"/api/v1/devices/{device['id']}/exports", token=token, json=export_body)
    task_body = {"name": "matrix task", "schedule": "0 0 1 1 *", "url": receiver.base + "/t/m/ok"}
    task = _ok(api.post("/api/v1/scheduled-tasks", token=token, json=task_body), 201)
    media_id = _ready_file(api, token, org_id)
    channel_id = _private_channel(api, token, org_id, member)
    chat = f"/api/v1/chat/channels/{channel_id}"
    sketch = _ok(api.post(f"{chat}/sketches", token=token, json={"title": "plan"}), 201)
    message = {"text": "first", "media_id": media_id, "sketch_id": sketch["id"]}
    _ok(api.post(f"{chat}/messages", token=token, json=message), 201)
    return Tenant(
        ids={
            "org_id": org_id,
            "device_id": device["id"],
            "rule_id": rule["id"],
            "alert_id": alert["id"],
            "command_id": _ok(command, 201)["id"],
            "export_id": _ok(export, 202)["id"],
            "task_id": task["id"],
            "invitation_id": _ok(invitation, 201)["id"],
            "user_id": member["id"],
            "media_id": media_id,
            "channel_id": channel_id,
            "seq": "1",
            "sketch_id": sketch["id"],
            "intruder_email": unique_email("matrix-intruder"),
        },
        owner=token,
        viewer=viewer["access_token"],
    )


@pytest.fixture(scope="module")
def tenant_b(api: Api, outbox: Outbox) -> Tenant:
    """Another org's owner, with a device of their own."""
    owner = signed_up_user(api, outbox, "matrix-outsider")
    token = owner["access_token"]
    org_id = _ok(api.post("/api/v1/orgs", token=token, json={"name": "Tenant B"}), 201)["id"]
    device = api.post("/api/v1/devices", token=token, json={"org_id": org_id, "name": "b-probe"})
    return Tenant(ids={"org_id": org_id}, owner=token, device_key=_ok(device, 201)["api_key"])


def _call(api: Api, op: Operation, token: str, ids: dict[str, str]) -> Any:
    path = op.path
    for name, real in ids.items():
        path = path.replace("{" + name + "}", real)
    body = _fill(BODIES[op.key], ids) if op.key in BODIES else None
    query = _fill(QUERIES.get(op.key, {}), ids)
    return api.call(op.method.upper(), path, token=token, json=body, params=query or None)


def _refused(response: Any, op: Operation, who: str) -> str | None:
    invalid_field = REFUSED_AS_INVALID.get(op.key)
    if invalid_field is not None:
        fields = [e.get("field") for e in response.json().get("errors", [])]
        if response.status_code != 422 or invalid_field not in fields:
            return f"{op} as {who}: {response.status_code} {response.text[:200]}"
    elif response.status_code not in (403, 404):
        return f"{op} as {who}: {response.status_code} {response.text[:200]}"
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return f"{op} as {who}: not a problem body ({response.headers.get('content-type')})"
    if any(name in response.text for name in (ORG_NAME, DEVICE_NAME, CHANNEL_NAME)):
        return f"{op} as {who}: the refusal shows tenant A's data"
    return None


def _snapshot(api: Api, a: Tenant) -> dict[str, Any]:
    """What tenant A's owner sees of its data: what no refused call may change."""
    ids = a.ids

    def get(path: str, **params: str) -> Any:
        return _ok(api.get(path, token=a.owner, params=params or None))

    org = get(f"/api/v1/orgs/{ids['org_id']}")
    members = get(f"/api/v1/orgs/{ids['org_id']}/members")["items"]
    invitations = get(f"/api/v1/orgs/{ids['org_id']}/invitations")["items"]
    device = get(f"/api/v1/devices/{ids['device_id']}")
    rule = get(f"/api/v1/alert-rules/{ids['rule_id']}")
    alert = get(f"/api/v1/alerts/{ids['alert_id']}")
    task = get(f"/api/v1/scheduled-tasks/{ids['task_id']}")
    config = get(f"/api/v1/devices/{ids['device_id']}/config")
    commands = get(f"/api/v1/devices/{ids['device_id']}/commands")["items"]
    exports = get(f"/api/v1/devices/{ids['device_id']}/exports")["items"]
    devices = get("/api/v1/devices", org_id=ids["org_id"])["items"]
    rules = get("/api/v1/alert-rules", org_id=ids["org_id"])["items"]
    media = get(f"/api/v1/media/{ids['media_id']}")
    files = get("/api/v1/media", org_id=ids["org_id"])["items"]
    usage = get("/api/v1/media/usage", org_id=ids["org_id"])
    chat = f"/api/v1/chat/channels/{ids['channel_id']}"
    channel = get(chat)
    messages = get(f"{chat}/messages")["items"]
    chat_members = get(f"{chat}/members")["items"]
    sketches = get(f"{chat}/sketches")["items"]
    return {
        "sketches": sorted((k["id"], k["title"], k["last_seq"]) for k in sketches),
        "channel": (channel["name"], channel["has_password"], channel["last_seq"]),
        "messages": sorted((m["seq"], m["text"], m["deleted"]) for m in messages),
        "chat_members": sorted((m["user_id"], m["last_read_seq"]) for m in chat_members),
        "org": (org["name"], org.get("telemetry_retention_days")),
        "members": sorted((m["user_id"], m["role"]) for m in members),
        "invitations": sorted(i["id"] for i in invitations),
        "device": (device["name"], device["enabled"], device["key_hint"]),
        "rule": (rule["name"], rule["threshold"], rule["enabled"]),
        "alert": (alert["state"], alert.get("acknowledged_at")),
        "task": (task["name"], task["status"]),
        "config": config.get("desired"),
        "commands": sorted(c["id"] for c in commands),
        "exports": sorted(e["id"] for e in exports),
        "devices": sorted(d["id"] for d in devices),
        "rules": sorted(r["id"] for r in rules),
        "media": (media["state"], media["sha256"], media["held_by"]),
        "files": sorted(f["id"] for f in files),
        "usage": (usage["bytes"], usage["objects"]),
    }


def test_no_operation_lets_another_tenant_or_a_viewer_reach_a_tenants_data(
    api: Api, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    # Given tenant A's data as its owner sees it
    before = _snapshot(api, tenant_a)

    # When every operation that names an id is called with A's ids by B's owner (or, on the
    # devices' own routes, B's device), and every write by a viewer of A
    problems: list[str] = []
    calls = 0
    for op, _ in WITH_IDS:
        device_route = op.path.startswith("/api/v1/device/")
        outsider = tenant_b.device_key if device_route else tenant_b.owner
        calls += 1
        problems.append(_refused(_call(api, op, outsider, tenant_a.ids), op, "another tenant"))
        if op.method in WRITES and not device_route and op.key not in VIEWER_MAY:
            calls += 1
            problems.append(_refused(_call(api, op, tenant_a.viewer, tenant_a.ids), op, "viewer"))

    # Then each is refused, and A's data is as it was
    found = [problem for problem in problems if problem]
    assert not found, f"{len(found)} of {calls} calls were not refused:\n" + "\n".join(found)
    assert _snapshot(api, tenant_a) == before
    print(f"tenant matrix: {len(WITH_IDS)} operations, {calls} calls, all refused")


def test_a_fresh_id_of_no_one_is_not_found_like_a_foreign_one(
    api: Api, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    # Given an id no one has and an id of tenant A, for the same device route
    ghost = "0" + uuid.uuid4().hex[:25].upper()
    # When tenant B asks for both
    foreign = api.get(f"/api/v1/devices/{tenant_a.ids['device_id']}", token=tenant_b.owner)
    missing = api.get(f"/api/v1/devices/{ghost}", token=tenant_b.owner)
    # Then the answers do not tell which one exists
    assert (foreign.status_code, foreign.json()["type"]) == (
        missing.status_code,
        missing.json()["type"],
    )
