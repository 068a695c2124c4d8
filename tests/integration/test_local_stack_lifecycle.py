"""The local stack across `up`, `down` and a crash of the engine (ADR 25), on a stack of its own.

These tests stop and kill their engine, so they start a private stack (a free port, a
throw-away state folder) rather than use the session's. In file order: the first calls after
`up`; private files; `status` and `down` without a port; the outbox across `down`/`up`; a crash;
and last `down` leaving no process behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from infra import stacks
from infra.local import stack as local_stack
from infra.template import template
from tests.integration.conftest import DEADLINE_SECONDS, Outbox, _free_port

PASSWORD = "correct horse 42"


class PrivateStack:
    def __init__(self) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="kumo-lifecycle-"))
        self.stack = local_stack.Stack(port=_free_port(), state_dir=self.state_dir)
        self.endpoints: dict[str, Any] = {}

    def up(self) -> dict[str, Any]:
        self.endpoints = local_stack.up(port=self.stack.port, state_dir=self.state_dir)
        return self.endpoints

    def down(self) -> None:
        local_stack.stop_engine(self.stack)

    def command(self, verb: str) -> subprocess.CompletedProcess[str]:
        """`python -m infra.local.stack <verb>` as `make` runs it: no --port, no KUMO_PORT."""
        env = {k: v for k, v in os.environ.items() if k != "KUMO_PORT"}
        return subprocess.run(  # noqa: S603
            [sys.executable, "-m", "infra.local.stack", verb, "--state-dir", str(self.state_dir)],
            cwd=local_stack.ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.endpoints["api"] + path, timeout=60, **kwargs)

    def register(self, label: str) -> str:
        email = f"{label}-{uuid.uuid4().hex[:10]}@example.com"
        created = self.api(
            "POST",
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "display_name": label},
        )
        assert created.status_code == 201, created.text
        return email


@pytest.fixture(scope="module")
def private() -> Iterator[PrivateStack]:
    stack = PrivateStack()
    stack.up()
    try:
        yield stack
    finally:
        stack.down()
        shutil.rmtree(stack.state_dir, ignore_errors=True)


def _saved(state_dir: Path, service: str, text: str) -> None:
    """Wait until the engine's saved state for `service` holds `text`."""
    path = state_dir / "engine" / f"{service}.json"
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"{text} not saved in {path} within {DEADLINE_SECONDS} s")


def test_the_first_login_after_up_succeeds(private: PrivateStack) -> None:
    # Given a stack just brought up (its login and profile functions warmed by `up`)
    warmed = private.endpoints["warmed"]["routes"]
    assert warmed["login"] == 200
    assert warmed["me"] == 200
    user = private.endpoints["demo"]["accounts"][1]

    # When the demo user signs in at once
    login = private.api(
        "POST", "/api/v1/auth/login", json={"email": user["email"], "password": user["password"]}
    )

    # Then it is signed in
    assert login.status_code == 200, login.text


def test_functions_run_locally_with_the_local_timeout(private: PrivateStack) -> None:
    # Given the login function, which the template gives AWS's 10 s
    assert template()["Globals"]["Function"]["Timeout"] == 10
    lam = boto3.client(
        "lambda",
        endpoint_url=private.stack.gateway,
        region_name=local_stack.REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )

    # When its deployed configuration is read on the local engine
    deployed = lam.get_function_configuration(FunctionName="kumo-local-login")

    # Then it may run as long as the local stack allows
    assert deployed["Timeout"] == stacks.LOCAL_TIMEOUT_SECONDS


def test_files_holding_secrets_are_the_owner_s_only(private: PrivateStack) -> None:
    # Given a running stack whose engine has saved its state (a deploy saves everything)
    state = private.state_dir

    # Then the endpoints file (demo passwords), the state folder and the engine's files
    # (password hashes, signing keys, mail with reset links) are readable by their owner only
    assert stat.S_IMODE((state / "endpoints.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    saved = sorted((state / "engine").glob("*.json"))
    assert saved
    assert {stat.S_IMODE(path.stat().st_mode) for path in saved} == {0o600}


def test_status_finds_the_stack_on_its_port_without_being_told(private: PrivateStack) -> None:
    # When `status` runs with neither --port nor KUMO_PORT
    status = private.command("status")

    # Then it finds the stack on the port `up` was given
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"running on http://127.0.0.1:{private.stack.port}" in status.stdout


def test_sent_mail_survives_down_and_up(private: PrivateStack) -> None:
    # Given a user whose confirmation mail is in the outbox
    email = private.register("outbox")
    outbox = Outbox(private.endpoints["outbox"])
    sent = outbox.wait_for(email, "Confirm")

    # When the stack is stopped and started again
    down = private.command("down")
    assert down.returncode == 0, down.stdout + down.stderr
    private.up()

    # Then the mail is still in the outbox
    assert [m["MessageId"] for m in outbox.messages_to(email)] == [sent["MessageId"]]


def test_a_crash_of_the_engine_keeps_what_it_saved_while_running(private: PrivateStack) -> None:
    # Given a user registered, and the engine's periodic save of it (ADR 25)
    email = private.register("crash")
    Outbox(private.endpoints["outbox"]).wait_for(email, "Confirm")
    _saved(private.state_dir, "dynamodb", email)
    _saved(private.state_dir, "ses", email)

    # When the engine is killed (no chance to save), then the stack started again
    engine = local_stack.recorded(private.state_dir)["pid"]
    os.kill(engine, signal.SIGKILL)
    local_stack._wait_gone([engine], 10)
    private.up()

    # Then the account and its mail are there: the user can confirm and sign in
    outbox = Outbox(private.endpoints["outbox"])
    token = Outbox.token(outbox.wait_for(email, "Confirm"))
    assert private.api("POST", "/api/v1/auth/verify-email", json={"token": token}).ok
    login = private.api("POST", "/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text


def test_down_leaves_no_process_of_the_stack(private: PrivateStack) -> None:
    # Given a stack that served concurrent calls: a Lambda worker each
    user = private.endpoints["demo"]["accounts"][1]
    body = {"email": user["email"], "password": user["password"]}
    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(lambda _: private.api("POST", "/api/v1/auth/login", json=body), range(6))
        )
    assert {answer.status_code for answer in answers} == {200}
    started = local_stack.stack_processes(private.stack)
    assert len(started) > 2, started  # the engine and several workers

    # When the stack is brought down as `make down` does
    down = private.command("down")

    # Then no process it started is left, and nothing answers on its port
    assert down.returncode == 0, down.stdout + down.stderr
    assert local_stack.stack_processes(private.stack) == []
    assert not [pid for pid in started if local_stack._alive(pid)]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{private.stack.gateway}/_ministack/ready", timeout=5)
    assert private.command("status").returncode == 1
