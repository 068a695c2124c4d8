"""The proof run: schemathesis against the local stack from docs/openapi.json, as a signed-in
user with an org and device of their own, and as anonymous: every phase (examples, coverage,
fuzzing, stateful through the spec's links) on a fixed seed, for a fixed time each.
`make fuzz` runs this file against the running stack; `make test` runs it in CI.

Every check schemathesis has must pass: server errors, status codes, content types and bodies
against the spec, data the spec forbids refused and data it allows accepted, 405 for methods
a path lacks, auth, resources after creation. The document is the contract: the fuzzer's
error feedback (formats it guesses from error messages) is off. Where a request can be valid
by the document and still be refused for what no schema can say (a cursor or a one-time
token Kumo did not issue, a password policy, a calendar date, a cron expression), SEMANTIC
names the routes and the answer; `config_for` writes them into the run's configuration.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Api, Outbox, signed_up_user

ROOT = Path(__file__).parents[2]
FUZZER = ROOT / ".local" / "fuzz" / "bin" / "st"
SPEC = ROOT / "docs" / "openapi.json"
SEED = int(os.environ.get("KUMO_FUZZ_SEED", "20261203"))
# Cases per operation in the coverage and fuzzing phases; the stateful phase then repeats until
# the run's time is spent. A quiet machine sends about 2,000 cases a run as the user (printed).
MAX_EXAMPLES = int(os.environ.get("KUMO_FUZZ_EXAMPLES", "5"))
SECONDS = {"user": 240, "anonymous": 200}
# Below what a run sends (user about 1,900 since chat's routes, whose channels hash their
# passwords; anonymous about 550: every anonymous case of a protected route is a quick 401,
# but sign-ups and sign-ins hash passwords): a run that sends fewer has spent its time
# waiting, and proves little.
MIN_CASES = {"user": 1_000, "anonymous": 400}
# Answers a route gives to requests the document allows, for reasons it cannot spell.
SEMANTIC: dict[str, tuple[str, list[str]]] = {
    "one-time token": (
        "400",  # invalid-token: only a token Kumo mailed, unused and unexpired, is good
        [
            "POST /api/v1/auth/password/reset",
            "POST /api/v1/auth/verify-email",
            "POST /api/v1/invitations/accept",
        ],
    ),
    "password policy": (
        # Letters and digits, not the address; changing it needs the right current password.
        "422",
        [
            "POST /api/v1/auth/register",
            "POST /api/v1/auth/password/reset",
            "PATCH /api/v1/users/me",
        ],
    ),
    "calendar": (
        # Days and times are read against the calendar; `from` not after `to`; raw readings
        # at most a week per query.
        "422",
        [
            "GET /api/v1/devices/{device_id}/readings",
            "GET /api/v1/devices/{device_id}/archives",
            "POST /api/v1/devices/{device_id}/exports",
        ],
    ),
    "references": (
        # An id in a body must name something of the caller's org (an alert rule's device) or
        # the caller's own ready file (an avatar).
        "422",
        [
            "POST /api/v1/alert-rules",
            "PATCH /api/v1/alert-rules/{rule_id}",
            "PATCH /api/v1/users/me",
        ],
    ),
    "upload rules": (
        # The declared type and size must be ones the purpose allows (kumo.media.purposes).
        "422",
        ["POST /api/v1/media/uploads"],
    ),
    "chat rules": (
        # A message needs text or a ready picture of the channel's org; a read marker stops at
        # the newest message; only a private channel takes invitations, of the org's members.
        "422",
        [
            "POST /api/v1/chat/channels/{channel_id}/messages",
            "PATCH /api/v1/chat/channels/{channel_id}/messages/{seq}",
            "POST /api/v1/chat/channels/{channel_id}/read",
            "POST /api/v1/chat/channels/{channel_id}/invitations",
        ],
    ),
    "schedules and targets": (
        # Cron and rate expressions, IANA time zones, public http(s) webhook targets, known
        # mail templates (ADR 10).
        "422",
        [
            "POST /api/v1/scheduled-tasks",
            "PATCH /api/v1/scheduled-tasks/{task_id}",
            "POST /api/v1/admin/tasks",
        ],
    ),
}
# What schemathesis expects of schema-valid data by default.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]


def config_for(spec: dict[str, Any]) -> str:
    """The run's configuration: the document's own answers, plus SEMANTIC, plus a 400 on every
    route with a `cursor` (a cursor is signed: only one the API handed out is read)."""
    extra: dict[str, set[str]] = {}
    for status, routes in SEMANTIC.values():
        for route in routes:
            extra.setdefault(route, set()).add(status)
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if any(p.get("name") == "cursor" for p in operation.get("parameters", [])):
                extra.setdefault(f"{method.upper()} {path}", set()).add("400")
    lines = ["[phases.fuzzing.error-feedback]", "enabled = false", ""]
    for route, statuses in sorted(extra.items()):
        method, path = route.split(" ", 1)
        assert path in spec["paths"] and method.lower() in spec["paths"][path], route
        expected = ACCEPTED + sorted(statuses)
        lines += [
            "[[operations]]",
            f"include-name = {json.dumps(route)}",
            f"checks.positive_data_acceptance.expected-statuses = {json.dumps(expected)}",
            "",
        ]
    return "\n".join(lines)


# Paths the fuzzer must not drive as the signed-in user, and why.
# The fuzzer speaks from a source of its own (the local engine takes it from X-Forwarded-For,
# tests/integration/test_abuse_limits.py), so the per-source abuse limits it meets (ADR 24) are
# not spent for the tests that run after it from 127.0.0.1.
FUZZ_SOURCE = {"user": "192.0.2.10", "anonymous": "192.0.2.11"}
AS_USER_EXCLUDED = {
    # Logging out would end the session the rest of the run uses.
    "/api/v1/auth/logout",
}


def _fuzz(base: str, report: Path, *, who: str, token: str | None) -> dict[str, Any]:
    config = report.with_name("schemathesis.toml")
    config.write_text(config_for(json.loads(SPEC.read_text())))
    command = [
        str(FUZZER),
        "--config-file",
        str(config),
        "run",
        str(SPEC),
        "--url",
        base,
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        os.environ.get("KUMO_FUZZ_SECONDS", str(SECONDS[who])),
        "--checks",
        "all",
        "--request-timeout",
        "60",
        "--no-color",
        # No example database: a run depends on the seed alone, not on what earlier runs found.
        "--generation-database",
        "none",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        "--header",
        f"X-Forwarded-For: {FUZZ_SOURCE[who]}",
    ]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
        for path in sorted(AS_USER_EXCLUDED):
            command += ["--exclude-path", path]
    done = subprocess.run(  # noqa: S603 - our own fuzzer with a fixed argument list
        command, capture_output=True, text=True, timeout=45 * 60, check=False
    )
    return {"code": done.returncode, "output": done.stdout + done.stderr, "report": report}


def _summary(output: str) -> str:
    marker = output.rfind("SUMMARY")
    return output[marker:] if marker >= 0 else output[-4000:]


@pytest.fixture(scope="module")
def fuzz_user(api: Api, outbox: Outbox) -> dict[str, Any]:
    user = signed_up_user(api, outbox, "fuzz")
    token = user["access_token"]
    org = api.post("/api/v1/orgs", token=token, json={"name": "Fuzz"})
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    device = api.post("/api/v1/devices", token=token, json={"org_id": org_id, "name": "fz"})
    assert device.status_code == 201, device.text
    return user


@pytest.mark.parametrize("who", ["user", "anonymous"])
def test_the_fuzzer_finds_nothing(
    endpoints: dict[str, Any], fuzz_user: dict[str, Any], who: str, tmp_path: Path
) -> None:
    # Given the spec and the running API
    assert FUZZER.exists(), "the fuzzer is installed by `make tools`"
    token = fuzz_user["access_token"] if who == "user" else None

    # When schemathesis runs every phase and check against it
    run = _fuzz(endpoints["api"], tmp_path / "events.ndjson", who=who, token=token)

    # Then it reports no failure, having sent a real number of cases
    summary = _summary(run["output"])
    print(f"fuzz as {who}:\n{summary}")
    # The failures with their curl reproductions come before the summary.
    assert run["code"] == 0, run["output"][-20_000:]
    cases = re.search(r"(\d+) generated", summary)
    assert cases and int(cases.group(1)) >= MIN_CASES[who], summary
    events = [json.loads(line) for line in run["report"].read_text().splitlines() if line]
    assert events, "the fuzzer wrote no report"
