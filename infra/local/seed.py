"""Seed the local stack with a demo organization, an admin, a user and two devices (idempotent).

Runs in its own interpreter with the stack's settings in the environment, and calls the
services directly: the first admin cannot be made through the API.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.local.stack import Stack

ADMIN_EMAIL = "admin@kumo.local"
USER_EMAIL = "learner@kumo.local"
ORG_NAME = "Demo Lab"
# Names and types of the demo org's devices; infra.local.simulator plays them.
DEMO_DEVICES = (("Greenhouse sensor", "climate-sensor"), ("Freezer probe", "temperature-probe"))


def seed(stack: Stack) -> dict[str, Any]:
    from infra.environment import environment_for
    from infra.local.stack import MAIL_SENDER, ROOT, STAGE, stack_outputs

    credentials = stack.state_dir / "demo-credentials.json"
    if not credentials.exists():
        passwords = {role: f"Kumo-{secrets.token_hex(6)}-9z" for role in ("admin", "user")}
        credentials.write_text(json.dumps(passwords))
        credentials.chmod(0o600)
    websocket_api = (stack_outputs(stack) or {}).get("WebSocketApiId", "")
    env = stack.aws_env()
    # The variables the functions get, with the values they have on the engine.
    env.update(
        environment_for(
            STAGE,
            account="000000000000",
            queue_base=f"{stack.gateway}/000000000000",
            websocket_url=f"{stack.gateway}/_aws/execute-api/{websocket_api}/{STAGE}",
            overrides={"MAIL_SENDER": MAIL_SENDER, "APP_URL": stack.gateway},
        )
    )
    env.update(
        KUMO_SEED_CREDENTIALS=str(credentials),
        KUMO_SEED_DEVICES=str(stack.state_dir / "demo-devices.json"),
        PYTHONPATH=os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)]),
        POWERTOOLS_LOG_LEVEL="WARNING",
    )
    result = subprocess.run(
        [sys.executable, "-m", "infra.local.seed"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"seeding failed:\n{result.stderr}")
    demo: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return demo


def _ensure_user(email: str, password: str, display_name: str, role: str) -> Any:
    from kumo.identity import service as identity

    user = identity.find_user_by_email(email)
    if user is None:
        user = identity.register(
            email=email, password=password, display_name=display_name, role=role, verified=True
        )
    return user


def _ensure_demo_devices(org_id: str, owner_id: str, keys_file: Path) -> list[dict[str, str]]:
    """Register the demo devices once, reused by name; their keys go to a file only the
    owner reads. Only a key's hash is stored, so a device whose key the file lacks (or holds
    an outdated one of) gets a new key."""
    from kumo.devices import keys
    from kumo.devices import service as devices
    from kumo.devices.models import DeviceModel
    from kumo.devices.schemas import RegisterDeviceRequest

    known: dict[str, str] = {}
    if keys_file.exists():
        saved = json.loads(keys_file.read_text()).get("devices", [])
        known = {entry["id"]: entry["api_key"] for entry in saved}
    existing: dict[str, DeviceModel] = {}
    cursor = None
    while True:
        page, cursor = devices.list_devices(
            user_id=owner_id, org_id=org_id, status=None, limit=100, cursor=cursor
        )
        for device in page:
            existing.setdefault(device.name, device)
        if cursor is None:
            break
    fleet = []
    for name, device_type in DEMO_DEVICES:
        found = existing.get(name)
        if found is None:
            # With a thing, so the simulator also obeys the config shadow (ADR 0016).
            request = RegisterDeviceRequest(
                org_id=org_id, name=name, type=device_type, certificate=True
            )
            device, api_key, _ = devices.register_device(user_id=owner_id, request=request)
        else:
            device, api_key = found, known.get(found.device_id, "")
            if keys.hash_key(api_key) != device.key_hash:
                api_key = devices.rotate_key(user_id=owner_id, device_id=device.device_id)
        fleet.append(
            {
                "id": device.device_id,
                "name": name,
                "api_key": api_key,
                "thing_name": device.thing_name,
            }
        )
    descriptor = os.open(keys_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        json.dump({"org_id": org_id, "devices": fleet}, stream, indent=2)
    keys_file.chmod(0o600)  # also when an older file had looser rights
    return [{"id": entry["id"], "name": entry["name"]} for entry in fleet]


def main() -> None:
    from kumo.orgs import service as orgs

    passwords = json.loads(Path(os.environ["KUMO_SEED_CREDENTIALS"]).read_text())
    admin = _ensure_user(ADMIN_EMAIL, passwords["admin"], "Demo Admin", "admin")
    user = _ensure_user(USER_EMAIL, passwords["user"], "Demo Learner", "user")
    org = orgs.ensure_demo_org(
        name=ORG_NAME,
        owner_id=admin.user_id,
        owner_email=admin.email,
        members=[(user.user_id, user.email, "member")],
    )
    demo_devices = _ensure_demo_devices(
        org.org_id, admin.user_id, Path(os.environ["KUMO_SEED_DEVICES"])
    )
    print(
        json.dumps(
            {
                "org_id": org.org_id,
                "org_name": org.name,
                "accounts": [
                    {
                        "role": "admin",
                        "email": ADMIN_EMAIL,
                        "password": passwords["admin"],
                        "user_id": admin.user_id,
                    },
                    {
                        "role": "user",
                        "email": USER_EMAIL,
                        "password": passwords["user"],
                        "user_id": user.user_id,
                    },
                ],
                "devices": demo_devices,
            }
        )
    )


if __name__ == "__main__":
    main()
