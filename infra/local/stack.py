"""The local stack: start MiniStack on loopback, build and deploy template.yaml, seed, report.

    python -m infra.local.stack up [--port 4566] [--state-dir .local/state] [--no-simulator]
    python -m infra.local.stack down [--state-dir .local/state]

`make up` and `make down` call this; the integration tests import it to run a stack of
their own on a free port with a throw-away state folder.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / ".local"
DEFAULT_STATE = LOCAL / "state"
DEFAULT_PORT = 4566
REGION = "us-east-1"
STACK_NAME = "kumo"
STAGE = "local"
MAIL_SENDER = "no-reply@kumo.local"
SIGNING_KEY_CACHE_SECONDS = 5
MINISTACK_PYTHON = LOCAL / "ministack" / "bin" / "python"
# MiniStack with the one fix Kumo needs from it (infra/local/engine.py, ADR 19).
ENGINE = ROOT / "infra" / "local" / "engine.py"
SAM_BIN = LOCAL / "sam" / "bin" / "sam"
BUILD_DIR = ROOT / ".aws-sam" / "build"


@dataclass(frozen=True)
class Stack:
    port: int
    state_dir: Path

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "ministack.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "ministack.log"

    def aws_env(self) -> dict[str, str]:
        """Environment for any AWS client (SAM CLI, boto3) aimed at this engine."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ENDPOINT_URL=self.gateway,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",  # noqa: S106 (the engine's dummy credentials)
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            SAM_CLI_TELEMETRY="0",
            SAM_CLI_POLL_DELAY="0.5",
        )
        return env


def log(message: str) -> None:
    print(f"[kumo] {message}", flush=True)


# --- engine ------------------------------------------------------------------------------


def _ready(stack: Stack) -> bool:
    try:
        ready_url = f"{stack.gateway}/_ministack/ready"  # always http://127.0.0.1
        with urllib.request.urlopen(ready_url, timeout=1) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _running_pid(stack: Stack) -> int | None:
    try:
        pid = int(stack.pid_file.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def start_engine(stack: Stack, timeout: float = 60) -> None:
    stack.state_dir.mkdir(parents=True, exist_ok=True)
    if _running_pid(stack) and _ready(stack):
        log(f"MiniStack already running on {stack.gateway}")
        return
    if _ready(stack):
        raise SystemExit(f"port {stack.port} is taken by another process; choose --port")
    if not MINISTACK_PYTHON.exists():
        raise SystemExit("MiniStack is not installed; run `make up` (it installs it)")
    env = stack.aws_env()
    env.pop("AWS_ENDPOINT_URL")
    env.update(
        GATEWAY_PORT=str(stack.port),
        BIND_HOST="127.0.0.1",
        PERSIST_STATE="1",
        STATE_DIR=str(stack.state_dir / "engine"),
        S3_PERSIST="1",
        S3_DATA_DIR=str(stack.state_dir / "s3"),
        IOT_MTLS_ENABLED="0",
        MINISTACK_REGION=REGION,
        LOG_LEVEL="WARNING",
    )
    with stack.log_file.open("ab") as log_stream:
        process = subprocess.Popen(  # noqa: S603 (our own pinned binary)
            [str(MINISTACK_PYTHON), str(ENGINE)],
            env=env,
            cwd=stack.state_dir,
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    stack.pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while not _ready(stack):
        if process.poll() is not None:
            raise SystemExit(f"MiniStack exited early; see {stack.log_file}")
        if time.monotonic() > deadline:
            raise SystemExit(f"MiniStack not ready after {timeout:.0f} s; see {stack.log_file}")
        time.sleep(0.1)
    log(f"MiniStack {stack.gateway} ready (pid {process.pid})")


def stop_engine(stack: Stack, timeout: float = 30) -> bool:
    pid = _running_pid(stack)
    if pid is None:
        stack.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)  # SIGTERM lets MiniStack write its state to disk
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # When this process started the engine, it must reap it: a zombie still "exists".
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        except ChildProcessError:
            pass  # started by another process (make up, then make down): just poll
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    stack.pid_file.unlink(missing_ok=True)
    return True


# --- build and deploy ----------------------------------------------------------------------


def _run(command: list[str], env: dict[str, str]) -> None:
    """Run a SAM CLI command quietly; its whole output is shown only when it fails."""
    sam_bin = str(SAM_BIN.parent)
    # The SAM venv's python3.12 is what `sam build` checks the runtime against.
    env = {**env, "PATH": f"{sam_bin}{os.pathsep}{env.get('PATH', '')}"}
    result = subprocess.run(  # noqa: S603
        command, cwd=ROOT, env=env, check=False, capture_output=True, text=True
    )
    if result.returncode != 0:
        print(result.stdout[-20000:], result.stderr[-20000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"failed: {' '.join(command[:2])} (exit {result.returncode})")


def build() -> None:
    """Compile the stacks (infra/stacks.py, ADR 19), then let `sam build` build their code."""
    from infra import stacks

    compiled = stacks.write(stacks.compile_stacks())
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env["SAM_CLI_TELEMETRY"] = "0"
    _run(
        [
            str(SAM_BIN),
            "build",
            "--config-file",
            str(ROOT / "samconfig.toml"),
            "--config-env",
            "local",
            "--template-file",
            str(compiled),
            "--build-dir",
            str(BUILD_DIR),
        ],
        env,
    )


def stack_outputs(stack: Stack) -> dict[str, str] | None:
    try:
        cloudformation = _client(stack, "cloudformation")
        described = cloudformation.describe_stacks(StackName=STACK_NAME)["Stacks"][0]
    except Exception:  # no stack yet, whatever the engine calls that
        return None
    if not described.get("StackStatus", "").endswith("_COMPLETE"):
        return None
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def parameter_overrides(stack: Stack) -> list[str]:
    return [
        f"Stage={STAGE}",
        f"MailSender={MAIL_SENDER}",
        f"AppUrl={stack.gateway}",
        # A rotation (make rotate-keys) reaches every function within seconds (ADR 0021).
        f"SigningKeyCacheSeconds={SIGNING_KEY_CACHE_SECONDS}",
        # Test receivers listen on 127.0.0.1, and short retry delays keep feedback quick.
        "AllowLoopbackWebhooks=true",
        "WebhookBackoffSeconds=2",
        # post_to_connection reaches the engine only under this path (docs/adr/0004).
        f"WebSocketManagementBase={stack.gateway}/_aws/execute-api",
        # MiniStack ignores partial batch responses on DynamoDB streams (ADR 14).
        "StreamPartialBatchResponses=false",
    ]


def deploy(stack: Stack, *, force: bool = False) -> dict[str, str]:
    from infra.local import code_sync

    marker = stack.state_dir / "deployed.json"
    previous = code_sync.Snapshot.read(marker)
    current = code_sync.snapshot()
    outputs = stack_outputs(stack)
    changed = None if force or not outputs else code_sync.code_only_change(previous, current)
    if outputs and changed == []:
        log("templates and code unchanged since the last deploy; skipping sam build/deploy")
        return outputs
    if outputs and changed:
        started = time.monotonic()
        code_sync.push(_client(stack, "lambda"), STAGE, changed)
        log(f"code of {', '.join(changed)} updated in {time.monotonic() - started:.1f} s")
        pushed = [*(previous.pushed if previous else []), *changed]
        marker.write_text(code_sync.record(current, pushed).to_json())
        return outputs
    started = time.monotonic()
    build()
    log(f"sam build done in {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    _run(
        [
            str(SAM_BIN),
            "deploy",
            "--config-file",
            str(ROOT / "samconfig.toml"),
            "--config-env",
            "local",
            "--template-file",
            str(BUILD_DIR / "template.yaml"),
            "--stack-name",
            STACK_NAME,
            "--region",
            REGION,
            "--parameter-overrides",
            *parameter_overrides(stack),
            "--no-progressbar",
        ],
        stack.aws_env(),
    )
    log(f"sam deploy done in {time.monotonic() - started:.1f} s")
    outputs = stack_outputs(stack)
    if outputs is None:
        raise SystemExit("the stack did not reach a *_COMPLETE state")
    apply_engine_workarounds(
        stack, outputs["ApiId"], outputs["WebSocketApiId"], outputs["DataBucket"]
    )
    # CloudFormation skips a function whose package it already has, even if the fast path
    # put other code there since: push what the fast path touched once more.
    stale = [name for name in (previous.pushed if previous else []) if name in current.code]
    if stale:
        code_sync.push(_client(stack, "lambda"), STAGE, stale)
    marker.write_text(code_sync.record(current, []).to_json())
    return outputs


def apply_engine_workarounds(
    stack: Stack, api_id: str, websocket_api_id: str, data_bucket: str
) -> None:
    """Set by API what MiniStack ignores in the template (docs/adr/0004-local-engine-gaps.md)."""
    from infra.template import template

    # 1. TimeToLiveSpecification of every table.
    dynamodb = _client(stack, "dynamodb")
    for name in ("identity", "orgs", "tasks", "devices", "telemetry", "alerts", "connections"):
        table = f"kumo-{STAGE}-{name}"
        described = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if described.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            dynamodb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
            )
    # 2. GatewayResponses, which SAM writes into the OpenAPI body as an extension.
    gateway = _client(stack, "apigateway")
    responses = template()["Resources"]["KumoApi"]["Properties"]["GatewayResponses"]
    for response_type, response in responses.items():
        extra = {"statusCode": str(response["StatusCode"])} if "StatusCode" in response else {}
        gateway.put_gateway_response(
            restApiId=api_id,
            responseType=response_type,
            responseParameters={
                f"gatewayresponse.header.{name}": value
                for name, value in response["ResponseParameters"]["Headers"].items()
            },
            responseTemplates=response["ResponseTemplates"],
            **extra,
        )
    # Gateway responses take effect with the next deployment, as on AWS.
    gateway.create_deployment(restApiId=api_id, stageName=STAGE)
    # 3. The WebSocket authorizer has no identity source, so a handshake carrying its token in
    # the query string still reaches it; the engine puts in the Authorization header instead.
    websocket = _client(stack, "apigatewayv2")
    for authorizer in websocket.get_authorizers(ApiId=websocket_api_id)["Items"]:
        if authorizer.get("IdentitySource"):
            websocket.update_authorizer(
                ApiId=websocket_api_id, AuthorizerId=authorizer["AuthorizerId"], IdentitySource=[]
            )
    # 4. The data bucket's LifecycleConfiguration (exports expire after a week).
    bucket = template()["Resources"]["DataBucket"]["Properties"]
    rules = [
        {
            "ID": rule["Id"],
            "Status": rule["Status"],
            "Filter": {"Prefix": rule.get("Prefix", "")},
            "Expiration": {"Days": rule["ExpirationInDays"]},
            "AbortIncompleteMultipartUpload": rule["AbortIncompleteMultipartUpload"],
        }
        for rule in bucket["LifecycleConfiguration"]["Rules"]
    ]
    _client(stack, "s3").put_bucket_lifecycle_configuration(
        Bucket=data_bucket, LifecycleConfiguration={"Rules": rules}
    )


def _client(stack: Stack, service: str) -> Any:
    import boto3

    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=stack.gateway,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106
    )


def endpoints(stack: Stack, outputs: dict[str, str]) -> dict[str, str]:
    api = f"{stack.gateway}/_aws/execute-api/{outputs['ApiId']}/{outputs['Stage']}"
    return {
        "api": api,
        "outbox": f"{stack.gateway}/_ministack/ses/messages",
        "gateway": stack.gateway,
        "health": f"{api}/api/v1/health",
        "openapi": f"{api}/api/v1/openapi.json",
        "region": REGION,
        "stage": outputs["Stage"],
        "api_id": outputs["ApiId"],
        "websocket": f"ws://127.0.0.1:{stack.port}/_aws/execute-api/"
        f"{outputs['WebSocketApiId']}/{outputs['Stage']}",
    }


# --- commands ------------------------------------------------------------------------------


def up(
    *,
    port: int = DEFAULT_PORT,
    state_dir: Path = DEFAULT_STATE,
    endpoints_file: Path | None = None,
    seed: bool = True,
    simulate: bool = False,
) -> dict[str, Any]:
    """`simulate` also runs the demo devices in the background (infra.local.simulator); only
    `make up` asks for it, so the integration tests' stack has no traffic it did not make."""
    started = time.monotonic()
    stack = Stack(port=port, state_dir=state_dir.resolve())
    start_engine(stack)
    outputs = deploy(stack)
    urls = endpoints(stack, outputs)
    result: dict[str, Any] = {**urls, "state_dir": str(stack.state_dir)}
    if seed:
        from infra.local import seed as seeding

        result["demo"] = seeding.seed(stack)
    target = endpoints_file or (
        LOCAL / "endpoints.json"
        if state_dir == DEFAULT_STATE
        else stack.state_dir / "endpoints.json"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    if simulate and seed:
        result["simulator"] = _start_simulator(stack, result["demo"]["org_id"], target)
    result["ready_seconds"] = round(time.monotonic() - started, 1)
    return result


def _start_simulator(stack: Stack, org_id: str, endpoints_file: Path) -> dict[str, Any]:
    from infra.local import simulator

    log_file = str(stack.state_dir / simulator.LOG_FILE)
    try:
        pid, started = simulator.start_background(stack.state_dir, org_id, endpoints_file)
    except RuntimeError as error:  # the stack itself is up: say so, and go on
        return {"error": str(error), "log": log_file}
    return {"pid": pid, "started": started, "log": log_file}


def stop_simulator(stack: Stack) -> bool:
    from infra.local import simulator

    return simulator.stop_background(stack.state_dir)


def _print_summary(result: dict[str, Any], endpoints_file: Path) -> None:
    log("the local stack is up")
    for key in ("api", "health", "openapi", "websocket", "outbox", "gateway"):
        log(f"  {key:9} {result[key]}")
    demo = result.get("demo")
    if demo:
        log(f"  demo organization: {demo['org_name']} ({demo['org_id']})")
        for account in demo["accounts"]:
            log(f"  {account['role']:6} {account['email']}  password: {account['password']}")
        for device in demo.get("devices", []):
            log(f"  device {device['id']}  {device['name']}")
    simulated = result.get("simulator")
    if simulated and "error" in simulated:
        log(f"  simulated devices: not running: {simulated['error']}")
    elif simulated:
        state = "started" if simulated["started"] else "already running"
        log(f"  simulated devices: {state} (pid {simulated['pid']}), log {simulated['log']}")
    log(f"  endpoints written to {endpoints_file}")
    log(f"ready in {result['ready_seconds']} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.stack")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("KUMO_PORT", DEFAULT_PORT)))
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    parser.add_argument("--no-seed", action="store_true")
    parser.add_argument("--no-simulator", action="store_true", help="no demo device traffic")
    args = parser.parse_args(argv)
    stack = Stack(port=args.port, state_dir=args.state_dir.resolve())
    if args.command == "up":
        endpoints_file = LOCAL / "endpoints.json"
        result = up(
            port=args.port,
            state_dir=args.state_dir,
            endpoints_file=endpoints_file,
            seed=not args.no_seed,
            simulate=not args.no_simulator,
        )
        _print_summary(result, endpoints_file)
    elif args.command == "down":
        # First the simulator: its open MQTT WebSockets would hold up the engine's shutdown.
        if stop_simulator(stack):
            log("simulated devices stopped")
        log("MiniStack stopped" if stop_engine(stack) else "nothing was running")
    else:
        running = _running_pid(stack) is not None and _ready(stack)
        log(f"MiniStack {'running on ' + stack.gateway if running else 'not running'}")
        if not running:
            return 1
        from infra.local import status

        for line in status.report(lambda service: _client(stack, service), STAGE):
            log(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
