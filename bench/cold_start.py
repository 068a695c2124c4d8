"""`make bench`, part 1: how long each function's handler module takes to import, cold.

    .venv/bin/python bench/cold_start.py [--runs 7] [--warmup 1] [--only identity/login,...]

Every function in template.yaml is imported in a fresh interpreter, its own folder and its
layers first on sys.path as on Lambda, the clock read inside the child around the import
only. Two baselines put the figures in proportion: the shared dependencies imported alone,
and a bare interpreter's start-up (measured from outside, process spawn included).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

# What every API function pulls in through the layer, without any kumo code.
SHARED_DEPENDENCIES = (
    "aws_lambda_powertools.event_handler",  # APIGatewayRestResolver
    "pydantic",
    "pynamodb.models",
    "boto3",
    "jwt",
    "argon2",
)

# In the venv (moto needs it) but not in the layer (layers/common/requirements.txt). PyJWT
# imports it when it can, which would add ~20 ms that Lambda never pays; so the child hides it.
ABSENT_FROM_LAYER = ("cryptography",)

# argv: comma-separated modules to import, comma-separated modules to hide, then the
# sys.path entries to put first.
_IMPORT_CHILD = """\
import importlib, sys, time
for hidden in filter(None, sys.argv[2].split(",")):
    sys.modules[hidden] = None  # a later import raises ModuleNotFoundError, as on Lambda
sys.path[:0] = sys.argv[3:]
started = time.perf_counter()
for name in sys.argv[1].split(","):
    importlib.import_module(name)
print((time.perf_counter() - started) * 1000)
"""


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    modules: tuple[str, ...]
    paths: tuple[Path, ...] = ()
    cwd: Path = ROOT
    # Measured from the parent: spawn, start-up and exit of `python -c pass`.
    wall_clock: bool = False


@dataclass(slots=True)
class Samples:
    target: Target
    ms: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.ms)


def _template() -> dict[str, Any]:
    # Run as a script, so the project root is not on sys.path yet.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from infra.template import template

    return template()


def _child_environment() -> dict[str, str]:
    """A clean, Lambda-like environment: dummy settings, nothing inherited that changes Python."""
    from infra.openapi import DUMMY_ENVIRONMENT

    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.update(DUMMY_ENVIRONMENT)
    env.update(POWERTOOLS_SERVICE_NAME="kumo", POWERTOOLS_LOG_LEVEL="INFO")
    return env


def function_targets() -> list[Target]:
    data = _template()
    resources: dict[str, Any] = data["Resources"]
    defaults: dict[str, Any] = data.get("Globals", {}).get("Function", {})
    targets = []
    for resource in resources.values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        if "CodeUri" not in props:
            continue
        code_dir = ROOT / str(props["CodeUri"])
        handler = str(props.get("Handler", defaults.get("Handler", "app.lambda_handler")))
        layer_dirs = []
        # SAM appends a function's own layers to the global ones.
        for layer in [*defaults.get("Layers", []), *props.get("Layers", [])]:
            layer_name = layer.get("Ref") if isinstance(layer, dict) else None
            content = resources.get(str(layer_name), {}).get("Properties", {}).get("ContentUri")
            if content:
                layer_dirs.append(ROOT / str(content))
        targets.append(
            Target(
                name=code_dir.relative_to(ROOT / "functions").as_posix().strip("/"),
                modules=(handler.rsplit(".", 1)[0],),
                paths=(code_dir, *layer_dirs),
                cwd=code_dir,
            )
        )
    return targets


def measure_once(python: Path, target: Target, env: dict[str, str]) -> float:
    if target.wall_clock:
        started = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True, env=env)  # noqa: S603
        return (time.perf_counter() - started) * 1000
    command: list[str | Path] = [
        python,
        "-c",
        _IMPORT_CHILD,
        ",".join(target.modules),
        ",".join(ABSENT_FROM_LAYER),
        *map(str, target.paths),
    ]
    result = subprocess.run(  # noqa: S603
        command, cwd=target.cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
        raise RuntimeError(lines[-1])
    return float(result.stdout.strip().splitlines()[-1])


def measure(python: Path, targets: list[Target], runs: int, warmup: int) -> list[Samples]:
    env = _child_environment()
    samples = [Samples(target) for target in targets]
    # Round-robin, so a burst of background load spreads over every target alike.
    for round_number in range(warmup + runs):
        label = "warm-up" if round_number < warmup else f"run {round_number - warmup + 1}/{runs}"
        print(f"  {label}", file=sys.stderr, flush=True)
        for sample in samples:
            if sample.error is not None:
                continue
            try:
                ms = measure_once(python, sample.target, env)
            except (RuntimeError, subprocess.SubprocessError) as error:
                sample.error = str(error)
                continue
            if round_number >= warmup:
                sample.ms.append(ms)
    return samples


def _row(name: str, sample: Samples, width: int) -> str:
    if sample.error is not None:
        return f"  {name:<{width}}  FAILED: {sample.error}"
    return f"  {name:<{width}}  {sample.median:>9.1f}  {min(sample.ms):>9.1f}"


def report(functions: list[Samples], baselines: list[Samples], runs: int) -> None:
    width = max(len(s.target.name) for s in functions + baselines)
    header = f"  {'function':<{width}}  {'median ms':>9}  {'min ms':>9}"
    print(f"Handler import time in a fresh interpreter, {runs} runs each")
    print(header)
    print("  " + "-" * (len(header) - 2))
    measured = sorted((s for s in functions if s.error is None), key=lambda s: -s.median)
    for sample in measured + [s for s in functions if s.error is not None]:
        print(_row(sample.target.name, sample, width))
    print()
    print("Baselines")
    for sample in baselines:
        print(_row(sample.target.name, sample, width))
    print()
    if measured:
        overall = statistics.median(s.median for s in measured)
        print(f"median of medians: {overall:.1f} ms over {len(measured)} functions")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/cold_start.py", description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per target (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument(
        "--python",
        type=Path,
        default=VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable),
        help="the interpreter to measure (default: the project venv)",
    )
    parser.add_argument(
        "--only", default="", help="comma-separated functions to measure (default: all)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")

    functions = function_targets()
    if args.only:
        wanted = set(args.only.split(","))
        functions = [target for target in functions if target.name in wanted]
        if missing := wanted - {target.name for target in functions}:
            parser.error(f"no such function: {', '.join(sorted(missing))}")
    baselines = [
        Target(name="shared dependencies only", modules=SHARED_DEPENDENCIES),
        Target(name="python startup (wall, -c pass)", modules=(), wall_clock=True),
    ]
    print(f"measuring {len(functions)} functions and 2 baselines", file=sys.stderr)
    samples = measure(args.python, functions + baselines, args.runs, args.warmup)
    report(samples[: len(functions)], samples[len(functions) :], args.runs)
    return 1 if any(s.error is not None for s in samples) else 0


if __name__ == "__main__":
    sys.exit(main())
