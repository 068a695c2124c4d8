"""The local stack: start MiniStack on loopback, build and deploy template.yaml, seed, report.

    python -m infra.local.stack up [--port 4566] [--state-dir .local/state] [--no-simulator]
    python -m infra.local.stack down|status [--state-dir .local/state]

`make up` and `make down` call this; the integration tests import it to run a stack of
their own on a free port with a throw-away state folder. A stack is recorded in its state
folder (stack.json: the engine's pid while it runs, and its port, kept after `down`), so
`down`, `status` and the next `up` find it on whatever port `up` was first given. What the
stack starts runs in the engine's session and carries its state folder in KUMO_STACK_STATE,
so `down` stops all of it, workers included (ADR 25).
"""

from __future__ import annotations

import argparse
import contextlib
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
# Every process of a stack carries this variable, its state folder: how `down` finds them.
STACK_MARKER = "KUMO_STACK_STATE"
# Seconds an extra worker a burst started may sit idle before the engine stops it (its
# default is 300; the first worker of each function stays).
WORKER_IDLE_SECONDS = 60
# What `up` calls once when their functions are cold (a new engine, or new code), so that a
# newcomer's first requests find them warm: signing in (a password hash, the signing keys, the
# first clients) and the authorizer every signed-in call goes through.
WARM_ROUTES: dict[str, tuple[str, ...]] = {
    "login": ("functions/identity/login",),
    "authorizer": ("functions/identity/authorizer",),
    # What a client asks for first once signed in.
    "me": ("functions/identity/get_me",),
}
MINISTACK_PYTHON = LOCAL / "ministack" / "bin" / "python"
# MiniStack with what Kumo adds to it (infra/local/engine.py, ADR 19 and 25).
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
    def record_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def pid_file(self) -> Path:
        """Where launchers before stack.json kept the engine's pid (still read)."""
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


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it may hold passwords, keys or tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when an older file had looser rights, before writing
    with os.fdopen(descriptor, "w") as stream:
        stream.write(text)


def recorded(state_dir: Path) -> dict[str, int]:
    """The engine's pid (while it runs) and port as `up` recorded them, or {}."""
    try:
        record = json.loads((state_dir / "stack.json").read_text())
        return {key: int(record[key]) for key in ("pid", "port") if key in record}
    except (FileNotFoundError, ValueError, TypeError, AttributeError):
        pass
    try:  # a stack started before stack.json: its pid only
        return {"pid": int((state_dir / "ministack.pid").read_text())}
    except (FileNotFoundError, ValueError):
        return {}


def recorded_port(state_dir: Path) -> int | None:
    return recorded(state_dir.resolve()).get("port")


def _running_pid(stack: Stack) -> int | None:
    pid = recorded(stack.state_dir).get("pid")
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return None
    return pid


def stack_processes(stack: Stack) -> list[int]:
    """The live processes this stack started: the engine, its Lambda workers and what they
    started, found by the variable the engine gave them all (STACK_MARKER). Read from /proc,
    so only another process of the same user, carrying this stack's own folder, can match."""
    marker = f"{STACK_MARKER}={stack.state_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie holds nothing; its parent or init collects it
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
    return sorted(found)


def start_engine(stack: Stack, timeout: float = 60) -> bool:
    """Start the engine unless it runs: True if it was started now."""
    stack.state_dir.mkdir(parents=True, exist_ok=True)
    stack.state_dir.chmod(0o700)  # the engine's state holds password hashes and signing keys
    if _running_pid(stack) and _ready(stack):
        log(f"MiniStack already running on {stack.gateway}")
        return False
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
        LAMBDA_WARM_TTL_SECONDS=str(WORKER_IDLE_SECONDS),
        **{STACK_MARKER: str(stack.state_dir)},
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
            umask=0o077,  # its state files and logs: the owner's only
        )
    write_private(stack.record_file, json.dumps({"pid": process.pid, "port": stack.port}))
    stack.pid_file.unlink(missing_ok=True)
    deadline = time.monotonic() + timeout
    while not _ready(stack):
        if process.poll() is not None:
            raise SystemExit(f"MiniStack exited early; see {stack.log_file}")
        if time.monotonic() > deadline:
            raise SystemExit(f"MiniStack not ready after {timeout:.0f} s; see {stack.log_file}")
        time.sleep(0.1)
    log(f"MiniStack {stack.gateway} ready (pid {process.pid})")
    return True


def stop_engine(stack: Stack, timeout: float = 30) -> bool:
    """Stop the engine (SIGTERM: it writes its state), then whatever it started that is still
    there: Lambda workers outlive it by seconds to minutes otherwise. True if anything ran."""
    pid = _running_pid(stack)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone([pid], timeout):
            os.kill(pid, signal.SIGKILL)
            _wait_gone([pid], 5)
    leftovers = stack_processes(stack)
    for child in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    if leftovers and not _wait_gone(leftovers, 2):
        for child in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        _wait_gone(leftovers, 5)
    # The port stays recorded: the next `up` of this folder starts on it again.
    write_private(stack.record_file, json.dumps({"port": stack.port}))
    stack.pid_file.unlink(missing_ok=True)
    return pid is not None or bool(leftovers)


def _wait_gone(pids: list[int], timeout: float) -> bool:
    """Wait until none of `pids` runs (a zombie counts as gone); reap those that are ours."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                # This process started the engine (the tests, `up` then `down` in one run): it
                # must reap it, since a zombie still "exists".
                os.waitpid(pid, os.WNOHANG)
            if _alive(pid):
                alive.append(pid)
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        pids = alive
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        state = ""
    if state == "Z":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def save_engine_state(stack: Stack, *, wait: bool = True) -> dict[str, Any]:
    """Have the engine write all its state now (infra/local/engine.py): it answers when done,
    or (`wait=False`) at once, saving meanwhile."""
    url = f"{stack.gateway}/_kumo/save" + ("" if wait else "?wait=0")
    request = urllib.request.Request(url, method="POST", data=b"")  # noqa: S310 (127.0.0.1)
    with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 (127.0.0.1)
        saved: dict[str, Any] = json.loads(answer.read())
        return saved


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
    """Compile the stacks for the local engine (infra/stacks.py, ADR 19: with its timeouts,
    ADR 25), then let `sam build` build their code."""
    from infra import stacks

    compiled = stacks.write(stacks.compile_stacks(local=True))
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
        # The REST API is served under /_aws/execute-api/<id>/<stage>: cookies are scoped so.
        "ApiPathBase=/_aws/execute-api",
        # MiniStack ignores partial batch responses on DynamoDB streams (ADR 14).
        "StreamPartialBatchResponses=false",
    ]


def deploy(stack: Stack, *, force: bool = False) -> tuple[dict[str, str], list[str] | None]:
    """Deploy what changed: the stack's outputs, and the function directories whose code was
    replaced ([] when nothing was, None when everything may have been: a full deploy)."""
    from infra.local import code_sync

    marker = stack.state_dir / "deployed.json"
    previous = code_sync.Snapshot.read(marker)
    current = code_sync.snapshot()
    outputs = stack_outputs(stack)
    changed = None if force or not outputs else code_sync.code_only_change(previous, current)
    if outputs and changed == []:
        log("templates and code unchanged since the last deploy; skipping sam build/deploy")
        return outputs, []
    if outputs and changed:
        started = time.monotonic()
        code_sync.push(_client(stack, "lambda"), STAGE, changed)
        log(f"code of {', '.join(changed)} updated in {time.monotonic() - started:.1f} s")
        pushed = [*(previous.pushed if previous else []), *changed]
        marker.write_text(code_sync.record(current, pushed).to_json())
        # The new code survives a crash of the engine too; saved while `up` goes on.
        save_engine_state(stack, wait=False)
        return outputs, changed
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
        stack,
        outputs["ApiId"],
        outputs["WebSocketApiId"],
        {"DataBucket": outputs["DataBucket"], "MediaBucket": outputs["MediaBucket"]},
    )
    # CloudFormation skips a function whose package it already has, even if the fast path
    # put other code there since: push what the fast path touched once more.
    stale = [name for name in (previous.pushed if previous else []) if name in current.code]
    if stale:
        code_sync.push(_client(stack, "lambda"), STAGE, stale)
    # The engine saves the functions and stacks only on a clean stop or when asked (ADR 25).
    started = time.monotonic()
    save_engine_state(stack)
    log(f"engine state saved in {time.monotonic() - started:.1f} s")
    marker.write_text(code_sync.record(current, []).to_json())
    return outputs, None


def apply_engine_workarounds(
    stack: Stack, api_id: str, websocket_api_id: str, buckets: dict[str, str]
) -> None:
    """Set by API what MiniStack ignores in the template (docs/adr/0004-local-engine-gaps.md)."""
    from infra import unsupported_methods
    from infra.template import template

    # 1. TimeToLiveSpecification of every table.
    dynamodb = _client(stack, "dynamodb")
    for name in (
        "identity", "orgs", "tasks", "devices", "telemetry", "alerts", "connections", "media",
        "chat",
    ):  # fmt: skip
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
    # 2b. The 405 method of every path, which the engine drops from the body (ADR 23).
    unsupported_methods.apply(gateway, api_id)
    # Gateway responses and methods take effect with the next deployment, as on AWS.
    gateway.create_deployment(restApiId=api_id, stageName=STAGE)
    # 3. The WebSocket authorizer has no identity source, so a handshake carrying its token in
    # the query string still reaches it; the engine puts in the Authorization header instead.
    websocket = _client(stack, "apigatewayv2")
    for authorizer in websocket.get_authorizers(ApiId=websocket_api_id)["Items"]:
        if authorizer.get("IdentitySource"):
            websocket.update_authorizer(
                ApiId=websocket_api_id, AuthorizerId=authorizer["AuthorizerId"], IdentitySource=[]
            )
    # 4. Each bucket's LifecycleConfiguration (exports expire after a week, quarantined
    # uploads after a day): stored, though the engine never applies it.
    for logical_id, name in buckets.items():
        bucket = template()["Resources"][logical_id]["Properties"]
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
            Bucket=name, LifecycleConfiguration={"Rules": rules}
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
    fresh = start_engine(stack)
    outputs, replaced = deploy(stack)
    urls = endpoints(stack, outputs)
    result: dict[str, Any] = {**urls, "state_dir": str(stack.state_dir)}
    cold = [
        route
        for route, functions in WARM_ROUTES.items()
        if fresh or replaced is None or set(functions) & set(replaced)
    ]
    warming = Warming(urls, cold) if cold else None
    if seed:
        from infra.local import seed as seeding

        seeding_started = time.monotonic()
        result["demo"] = seeding.seed(stack)
        log(f"demo data seeded in {time.monotonic() - seeding_started:.1f} s")
    if warming:
        warming.signed_in(result.get("demo"))
        result["warmed"] = warming.result()
    target = endpoints_file or endpoints_path(stack.state_dir)
    # The demo accounts' passwords are in it.
    write_private(target, json.dumps(result, indent=2) + "\n")
    if simulate and seed:
        result["simulator"] = _start_simulator(stack, result["demo"]["org_id"], target)
    result["ready_seconds"] = round(time.monotonic() - started, 1)
    return result


def endpoints_path(state_dir: Path) -> Path:
    """Where `up` writes the URLs and demo accounts: .local/endpoints.json for the default
    state folder, endpoints.json inside any other."""
    resolved = state_dir.resolve()
    return LOCAL / "endpoints.json" if resolved == DEFAULT_STATE else resolved / "endpoints.json"


class Warming:
    """Call each cold route once (WARM_ROUTES), so that its functions have a worker when the
    first requests after `up` come. Beside the seeding, the authorizer is called with a token it
    refuses and the sign-in with a body it refuses, which starts their workers; once the demo
    user is seeded, it signs in on that worker (its first password hash, signing key and
    clients) and reads its profile. A route that fails is reported, not raised: the stack is
    up, and its first caller waits for the cold start instead."""

    def __init__(self, urls: dict[str, str], routes: list[str]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.api = urls["api"] + "/api/v1"
        self.routes = routes
        self.answers: dict[str, Any] = {}
        self.started = time.monotonic()
        self.pool = ThreadPoolExecutor(3)
        if "authorizer" in routes:  # a token it refuses: the authorizer answers, and is warm
            self.pool.submit(self.call, "authorizer", "GET", "/users/me", token="not-a-token")  # noqa: S106
        # A body it refuses (422, no sign-in attempt): the sign-in's worker starts meanwhile.
        self.login_worker = (
            self.pool.submit(self.call, "login_start", "POST", "/auth/login", {})
            if "login" in routes
            else None
        )

    def call(self, name: str, method: str, path: str, body: Any = None, token: str = "") -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = self.api + path
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=150) as answer:  # noqa: S310 (127.0.0.1)
                self.answers[name] = answer.status
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            self.answers[name] = error.code
        except (urllib.error.URLError, OSError, ValueError) as error:
            self.answers[name] = type(error).__name__
        return None

    def signed_in(self, demo: dict[str, Any] | None) -> None:
        user = next((a for a in (demo or {}).get("accounts", []) if a["role"] == "user"), None)
        if user is None or not {"login", "me"} & set(self.routes):
            return
        if self.login_worker is not None:
            self.login_worker.result()  # on that worker, not a second one started beside it
        tokens = self.call(
            "login", "POST", "/auth/login", {"email": user["email"], "password": user["password"]}
        )
        if "me" in self.routes and isinstance(tokens, dict) and "access_token" in tokens:
            self.call("me", "GET", "/users/me", token=tokens["access_token"])

    def result(self) -> dict[str, Any]:
        self.pool.shutdown(wait=True)
        return {"routes": self.answers, "seconds": round(time.monotonic() - self.started, 1)}


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
    warmed = result.get("warmed")
    if warmed:
        answers = ", ".join(f"{name} {code}" for name, code in sorted(warmed["routes"].items()))
        log(f"  warmed in {warmed['seconds']} s: {answers}")
    log(f"  endpoints written to {endpoints_file}")
    log(f"ready in {result['ready_seconds']} s")


def resolve_port(explicit: int | None, state_dir: Path) -> int:
    """--port, else KUMO_PORT, else the port the stack of this state folder was started on."""
    if explicit is not None:
        return explicit
    if os.environ.get("KUMO_PORT"):
        return int(os.environ["KUMO_PORT"])
    return recorded_port(state_dir) or DEFAULT_PORT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.stack")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"default: KUMO_PORT, else the running stack's, else {DEFAULT_PORT}",
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    parser.add_argument("--no-seed", action="store_true")
    parser.add_argument("--no-simulator", action="store_true", help="no demo device traffic")
    args = parser.parse_args(argv)
    port = resolve_port(args.port, args.state_dir)
    stack = Stack(port=port, state_dir=args.state_dir.resolve())
    if args.command == "up":
        endpoints_file = endpoints_path(args.state_dir)
        result = up(
            port=port,
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
