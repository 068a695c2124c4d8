"""Which settings each function's code can read, found from its imports, and their values
for a stage outside Lambda (`environment_for`).

    python -m infra.environment            # a line per function: the variables it is given

`variables_of` is the wide answer: a setting read anywhere in a `kumo` module the handler
imports (directly, lazily inside a function, or through another module). What a function is
given is narrower, `infra.access.variables_used`: what its imports run and what the code its
handler can call reads (infra/stacks.py, ADR 19); that is what the command prints.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "common"
FUNCTIONS = ROOT / "functions"


@cache
def _module_file(module: str) -> Path | None:
    base = LAYER.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(tree: ast.AST, package: str) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                base = node.module or ""
            yield base
            # `from kumo.orgs import service` imports the module kumo.orgs.service.
            yield from (f"{base}.{alias.name}" for alias in node.names)


@cache
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@cache
def _kumo_imports(path: Path, package: str) -> tuple[str, ...]:
    """Walked once per module: every handler's search passes through the same modules."""
    return tuple(name for name in _imports(_parsed(path), package) if name.startswith("kumo"))


def kumo_modules(handler: Path) -> set[Path]:
    """Every kumo source file the handler can import, itself included."""
    seen: set[Path] = set()
    todo: list[tuple[Path, str]] = [(handler, "")]
    while todo:
        path, package = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _kumo_imports(path, package):
            # Importing a.b.c runs a/__init__, a/b/__init__ too.
            parts = name.split(".")
            for end in range(1, len(parts) + 1):
                module = ".".join(parts[:end])
                found = _module_file(module)
                if found is not None and found not in seen:
                    pkg = module if found.name == "__init__.py" else module.rpartition(".")[0]
                    todo.append((found, pkg))
    return seen


@cache
def _attributes(path: Path) -> frozenset[str]:
    return frozenset(
        node.attr for node in ast.walk(_parsed(path)) if isinstance(node, ast.Attribute)
    )


def settings_read(paths: set[Path]) -> set[str]:
    """Names of Settings attributes read in these files."""
    from kumo.core.config import variables

    known = variables()
    return {name for path in paths for name in _attributes(path) if name in known}


def variables_of(handler: Path) -> list[str]:
    """The environment variables the function with this handler reads, sorted."""
    if str(LAYER) not in sys.path:
        sys.path.insert(0, str(LAYER))
    from kumo.core.config import variables

    known = variables()
    return sorted(known[name].variable for name in settings_read(kumo_modules(handler)))


def handlers() -> list[Path]:
    return sorted(FUNCTIONS.glob("*/*/app.py"))


def main() -> int:
    from infra.access import variables_used

    for handler in handlers():
        name = handler.parent.relative_to(FUNCTIONS)
        print(f"{name}: {' '.join(variables_used(handler)) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# --- the values, for a stage outside Lambda ------------------------------------------------


def catalogue() -> dict[str, Any]:
    """Every variable the template sets: the Globals catalogue, then those given per function."""
    from infra.template import template

    data = template()
    variables: dict[str, Any] = dict(data["Globals"]["Function"]["Environment"]["Variables"])
    for resource in data["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            own = resource["Properties"].get("Environment", {}).get("Variables", {})
            for key, value in own.items():
                variables.setdefault(key, value)
    return variables


def environment_for(
    stage: str,
    *,
    account: str,
    region: str = "us-east-1",
    queue_base: str | None = None,
    websocket_url: str = "",
    overrides: dict[str, str] | None = None,
) -> dict[str, str]:
    """Every variable of the template with the value it has in `stage`: for the unit tests
    (moto), the OpenAPI build, the seed and the benches, which run Kumo's code outside Lambda.
    Queue URLs are `<queue_base>/<name>` (AWS's form by default); the WebSocket management
    URL, which the template derives from the deployed API, is given."""
    from infra.template import NAME_PROPERTY, template

    data = template()
    resources: dict[str, Any] = data["Resources"]
    values = {
        name: str(parameter.get("Default", "")) for name, parameter in data["Parameters"].items()
    }
    values.update(
        {
            "Stage": stage,
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
    )
    base = queue_base or f"https://sqs.{region}.amazonaws.com/{account}"

    def ref(name: str) -> str:
        if name in values:
            return values[name]
        resource = resources[name]
        value = evaluate(resource["Properties"][NAME_PROPERTY[resource["Type"]]])
        return f"{base}/{value}" if resource["Type"] == "AWS::SQS::Queue" else value

    def evaluate(node: Any) -> str:
        if isinstance(node, str | int | float):
            return str(node)
        if "Ref" in node:
            return ref(node["Ref"])
        if "Fn::Sub" in node:
            return re.sub(r"\$\{([^}]+)\}", lambda match: ref(match.group(1)), node["Fn::Sub"])
        if "Fn::GetAtt" in node and node["Fn::GetAtt"][1] == "QueueName":
            return evaluate(resources[node["Fn::GetAtt"][0]]["Properties"]["QueueName"])
        if "Fn::If" in node:
            condition, when_true, when_false = node["Fn::If"]
            if condition == "HasWebSocketManagementBase":
                return websocket_url  # derived from the deployed API: given
            return evaluate(when_true if holds(conditions[condition]) else when_false)
        raise ValueError(f"no local value for {node}")

    conditions: dict[str, Any] = data.get("Conditions", {})

    def holds(node: Any) -> bool:
        if "Fn::Not" in node:
            return not holds(node["Fn::Not"][0])
        if "Fn::Equals" in node:
            left, right = node["Fn::Equals"]
            return evaluate(left) == evaluate(right)
        if "Condition" in node:
            return holds(conditions[node["Condition"]])
        raise ValueError(f"no local value for the condition {node}")

    environment = {key: evaluate(value) for key, value in catalogue().items()}
    environment.update(overrides or {})
    return environment
