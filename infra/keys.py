"""Rotate the signing key sets in Secrets Manager (ADR 0021), on AWS or on the local stack.

    python -m infra.keys rotate --stage local [--port 4566] [--which jwt|cursor|all]
    python -m infra.keys rotate --stage prod [--region eu-west-1] [--keep-seconds 1500]
    make rotate-keys [STAGE=prod]

A rotation adds a new current key and keeps the previous ones for `--keep-seconds` after they
stopped being current: by then every token they signed has expired, even one minted by a
container that had not yet read the rotation. Older keys are dropped. It prints kids only,
never a key.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

LAYER = Path(__file__).resolve().parents[1] / "layers" / "common"

KEY_SETS = {"jwt": "jwt-keys", "cursor": "cursor-keys"}
LOCAL_STAGE = "local"
LOCAL_REGION = "us-east-1"
# Clock skew between functions, and the time a rotation takes to be written and read.
MARGIN_SECONDS = 300


def secret_name(stage: str, which: str) -> str:
    """The template's Name of a key set's secret (template.yaml, JwtSigningKeys...)."""
    return f"kumo-{stage}-{KEY_SETS[which]}"


def default_keep_seconds() -> int:
    """An access token's lifetime, plus the longest a container signs with a cached set after
    a rotation, plus a margin: the age from which a retired key signs nothing still valid."""
    from kumo.core.config import Settings

    lifetime = int(Settings.access_token_seconds.default or 0)
    cached = int(Settings.signing_key_cache_seconds.default or 0)
    return lifetime + cached + MARGIN_SECONDS


def rotate(client: Any, secret_id: str, *, keep_seconds: float, now: float | None = None) -> Any:
    """Put a rotated key set as the secret's current value; answers the new set."""
    from kumo.core import signing_keys

    stored = client.get_secret_value(SecretId=secret_id)["SecretString"]
    rotated = signing_keys.parse_key_set(stored).rotated(
        now=time.time() if now is None else now, keep_seconds=keep_seconds
    )
    client.put_secret_value(SecretId=secret_id, SecretString=rotated.to_json())
    return rotated


def secrets_client(stage: str, *, port: int, region: str | None) -> Any:
    import boto3

    if stage == LOCAL_STAGE:
        return boto3.client(
            "secretsmanager",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name=LOCAL_REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",  # noqa: S106 (the local engine's dummy credentials)
        )
    return boto3.client("secretsmanager", region_name=region)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.keys", description=__doc__)
    parser.add_argument("command", choices=["rotate"])
    parser.add_argument("--stage", required=True)
    parser.add_argument("--which", choices=[*KEY_SETS, "all"], default="all")
    parser.add_argument("--keep-seconds", type=int, default=None)
    parser.add_argument(
        "--port", type=int, default=None, help="local stage: default KUMO_PORT, else make up's"
    )
    parser.add_argument("--region", default=None, help="AWS stages: the stack's region")
    args = parser.parse_args(argv)
    keep = default_keep_seconds() if args.keep_seconds is None else args.keep_seconds
    from infra.local.stack import DEFAULT_STATE, resolve_port

    port = resolve_port(args.port, DEFAULT_STATE)
    client = secrets_client(args.stage, port=port, region=args.region)
    for which in KEY_SETS if args.which == "all" else [args.which]:
        name = secret_name(args.stage, which)
        rotated = rotate(client, name, keep_seconds=keep)
        kept = ", ".join(sorted(set(rotated.keys) - {rotated.current})) or "none"
        print(f"[kumo] {name}: current kid {rotated.current}; still accepted: {kept}")
    return 0


if __name__ == "__main__":
    if str(LAYER) not in sys.path:
        sys.path.insert(0, str(LAYER))
    sys.exit(main())
