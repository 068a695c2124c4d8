"""What changed since the last local deploy, and the fast path for a change to code only.

`make up` deploys through `sam build` and `sam deploy` whenever the templates, the layer or the
tooling that compiles them changed. When only handler code changed, and the changed handlers
read the same settings as before (so their compiled environment is the same), it updates those
functions' code in place with UpdateFunctionCode: what `sam sync --code` does on AWS, in well
under a second instead of a build and a nested-stack update. The next full deploy uploads the
same code again, and pushes the functions updated this way once more, so CloudFormation's
record can never hold older code than the function runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
# What a full deploy depends on besides the handlers' own code.
TEMPLATE_INPUTS = (
    "template.yaml",
    "stacks",
    "samconfig.toml",
    "layers",
    "infra/stacks.py",
    "infra/template.py",
    "infra/environment.py",
)


def _files(path: Path) -> list[Path]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [file for file in files if "__pycache__" not in file.parts]


def _digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in paths:
        digest.update(str(file.relative_to(ROOT)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


@dataclass
class Snapshot:
    template: str
    code: dict[str, str]  # functions/<context>/<name> -> digest of its files
    variables: dict[str, list[str]] = field(default_factory=dict)
    pushed: list[str] = field(default_factory=list)  # updated by the fast path since

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1, sort_keys=True)

    @classmethod
    def read(cls, path: Path) -> Snapshot | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None  # none yet, or written by an older launcher: deploy in full


def snapshot() -> Snapshot:
    inputs = [file for name in TEMPLATE_INPUTS for file in _files(ROOT / name)]
    code = {
        str(handler.parent.relative_to(ROOT)): _digest(_files(handler.parent))
        for handler in sorted(FUNCTIONS.glob("*/*/app.py"))
    }
    return Snapshot(template=_digest(inputs), code=code)


def variables(function_dir: str) -> list[str]:
    from infra.access import variables_used

    return list(variables_used(ROOT / function_dir / "app.py"))


def code_only_change(previous: Snapshot | None, current: Snapshot) -> list[str] | None:
    """The function directories whose code alone changed, or None when a full deploy is due."""
    if previous is None or previous.template != current.template:
        return None
    if set(previous.code) != set(current.code):
        return None
    changed = [name for name, digest in current.code.items() if previous.code[name] != digest]
    for name in changed:
        if (ROOT / name / "requirements.txt").exists():
            return None  # dependencies are sam build's to install
        if variables(name) != previous.variables.get(name):
            return None  # its environment changes with it
    return changed


def record(current: Snapshot, pushed: list[str]) -> Snapshot:
    """The snapshot to keep: the variables each function reads, and what the fast path pushed."""
    current.variables = {name: variables(name) for name in current.code}
    current.pushed = sorted(set(pushed))
    return current


def zipped(function_dir: str) -> bytes:
    """The function's package as `sam build` makes it for a handler without requirements."""
    source = ROOT / function_dir
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in _files(source):
            archive.write(file, file.relative_to(source).as_posix())
    return buffer.getvalue()


def push(lambda_client: Any, stage: str, function_dirs: list[str]) -> None:
    for function_dir in function_dirs:
        lambda_client.update_function_code(
            FunctionName=f"kumo-{stage}-{Path(function_dir).name}", ZipFile=zipped(function_dir)
        )
