"""make up's fast path: a change to handler code alone updates the function in place."""

from __future__ import annotations

import io
import zipfile

from infra.local import code_sync

LIVENESS = "functions/core/liveness"


def _recorded() -> code_sync.Snapshot:
    return code_sync.record(code_sync.snapshot(), [])


def test_nothing_changed_means_nothing_to_push() -> None:
    assert code_sync.code_only_change(_recorded(), code_sync.snapshot()) == []


def test_a_handler_edit_that_reads_the_same_settings_is_pushed_alone() -> None:
    previous = _recorded()
    previous.code[LIVENESS] = "an older digest"
    assert code_sync.code_only_change(previous, code_sync.snapshot()) == [LIVENESS]


def test_a_handler_that_now_reads_another_setting_needs_a_full_deploy() -> None:
    previous = _recorded()
    previous.code[LIVENESS] = "an older digest"
    previous.variables[LIVENESS] = ["SOME_OTHER_VARIABLE"]
    assert code_sync.code_only_change(previous, code_sync.snapshot()) is None


def test_template_layer_or_new_function_changes_need_a_full_deploy() -> None:
    assert code_sync.code_only_change(None, code_sync.snapshot()) is None
    previous = _recorded()
    previous.template = "another template"
    assert code_sync.code_only_change(previous, code_sync.snapshot()) is None
    previous = _recorded()
    del previous.code[LIVENESS]
    assert code_sync.code_only_change(previous, code_sync.snapshot()) is None


def test_the_snapshot_survives_its_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "deployed.json"
    snapshot = code_sync.record(code_sync.snapshot(), [LIVENESS, LIVENESS])
    path.write_text(snapshot.to_json())
    read = code_sync.Snapshot.read(path)
    assert read == snapshot and read.pushed == [LIVENESS]
    path.write_text("an older launcher's sha256")
    assert code_sync.Snapshot.read(path) is None


def test_the_package_holds_the_handler_at_its_root() -> None:
    with zipfile.ZipFile(io.BytesIO(code_sync.zipped(LIVENESS))) as archive:
        assert "app.py" in archive.namelist()
        assert not any("__pycache__" in name for name in archive.namelist())
