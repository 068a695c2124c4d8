"""The launcher's bookkeeping (infra/local/stack.py): the recorded port, private files, and
which processes belong to a stack. No engine runs here."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from infra.local import stack as local_stack


def test_down_and_status_use_the_port_up_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stack recorded on port 4711, and no KUMO_PORT
    monkeypatch.delenv("KUMO_PORT", raising=False)
    (tmp_path / "stack.json").write_text(json.dumps({"pid": 123, "port": 4711}))

    # Then a command given no port finds it there; --port and KUMO_PORT still win
    assert local_stack.resolve_port(None, tmp_path) == 4711
    assert local_stack.resolve_port(4800, tmp_path) == 4800
    monkeypatch.setenv("KUMO_PORT", "4900")
    assert local_stack.resolve_port(None, tmp_path) == 4900


def test_a_stopped_stack_keeps_its_port_for_the_next_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stack on port 4711 that is not running (its engine's pid is long gone)
    monkeypatch.delenv("KUMO_PORT", raising=False)
    stack = local_stack.Stack(port=4711, state_dir=tmp_path)
    (tmp_path / "stack.json").write_text(json.dumps({"port": 4711}))

    # When it is brought down (there is nothing to stop)
    assert local_stack.stop_engine(stack) is False

    # Then the next command given no port still uses 4711
    assert local_stack.recorded(tmp_path) == {"port": 4711}
    assert local_stack.resolve_port(None, tmp_path) == 4711


def test_without_a_record_the_default_port_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a state folder of a stack started before stack.json: its pid only
    monkeypatch.delenv("KUMO_PORT", raising=False)
    (tmp_path / "ministack.pid").write_text("123")

    # Then its pid is still found, and the port is the default
    assert local_stack.recorded(tmp_path) == {"pid": 123}
    assert local_stack.resolve_port(None, tmp_path) == local_stack.DEFAULT_PORT


def test_private_files_are_the_owner_s_only_even_if_they_were_not(tmp_path: Path) -> None:
    # Given a world-readable file from an older launcher
    target = tmp_path / "endpoints.json"
    target.write_text("{}")
    target.chmod(0o644)

    # When it is written again
    local_stack.write_private(target, '{"demo": "passwords"}')

    # Then only its owner may read it
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == '{"demo": "passwords"}'


def test_a_stack_s_processes_are_those_carrying_its_folder(tmp_path: Path) -> None:
    # Given a process started with this stack's marker, one with another stack's, one without
    stack = local_stack.Stack(port=1, state_dir=tmp_path / "mine")
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]

    def start(marker: str | None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != local_stack.STACK_MARKER}
        if marker is not None:
            env[local_stack.STACK_MARKER] = marker
        return subprocess.Popen(sleep, env=env)  # noqa: S603

    mine = start(str(stack.state_dir))
    other = start(str(tmp_path / "other"))
    unmarked = start(None)
    try:
        # Then only the first is this stack's
        assert local_stack.stack_processes(stack) == [mine.pid]
    finally:
        for process in (mine, other, unmarked):
            process.kill()
            process.wait()

    # And once it is gone, none is
    assert local_stack.stack_processes(stack) == []
