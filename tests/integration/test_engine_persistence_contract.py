"""Contract: what MiniStack itself keeps of its state across a stop and a crash (ADR 25).

Run on the bare engine (MiniStack's own entry point, not infra/local/engine.py), started on a
free port with a throw-away state folder. When one of these fails, the engine changed, and
the saves and outbox copy in engine.py may no longer be needed (or may no longer work).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.local import stack as local_stack
from tests.integration.conftest import _free_port

SENDER = "contract@kumo.test"


class BareEngine:
    def __init__(self) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="kumo-engine-contract-"))
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            GATEWAY_PORT=str(self.port),
            BIND_HOST="127.0.0.1",
            PERSIST_STATE="1",
            STATE_DIR=str(self.state_dir / "engine"),
            IOT_MTLS_ENABLED="0",
            LOG_LEVEL="WARNING",
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
        )
        self.process = subprocess.Popen(  # noqa: S603 (the pinned engine)
            [str(local_stack.MINISTACK_PYTHON), "-c", "from ministack.app import main; main()"],
            env=env,
            cwd=self.state_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                ready = f"http://127.0.0.1:{self.port}/_ministack/ready"
                with urllib.request.urlopen(ready, timeout=1):
                    return
            except OSError:
                assert time.monotonic() < deadline, "the engine did not start"
                time.sleep(0.1)

    def stop(self, how: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(how)
        self.process.wait(timeout=30)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=f"http://127.0.0.1:{self.port}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def write(self, table: str) -> None:
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "kept?"}})

    def tables(self) -> list[str]:
        names: list[str] = self.client("dynamodb").list_tables()["TableNames"]
        return names

    def send_mail(self) -> None:
        ses = self.client("ses")
        ses.verify_email_identity(EmailAddress=SENDER)
        ses.send_email(
            Source=SENDER,
            Destination={"ToAddresses": ["someone@kumo.test"]},
            Message={"Subject": {"Data": "kept?"}, "Body": {"Text": {"Data": "?"}}},
        )

    def outbox(self) -> list[Any]:
        url = f"http://127.0.0.1:{self.port}/_ministack/ses/messages"
        with urllib.request.urlopen(url, timeout=10) as answer:
            messages = json.loads(answer.read())["messages"]
        return [m for account in messages.values() for m in account]


@pytest.fixture
def engine() -> Iterator[BareEngine]:
    bare = BareEngine()
    bare.start()
    yield bare
    if bare.process and bare.process.poll() is None:
        bare.stop(signal.SIGKILL)
    shutil.rmtree(bare.state_dir, ignore_errors=True)


def test_the_engine_writes_its_state_only_on_a_clean_stop(engine: BareEngine) -> None:
    # Given a table with an item, on the bare engine
    engine.write("written-before-a-crash")

    # When the engine is killed, then started again
    engine.stop(signal.SIGKILL)
    engine.start()

    # Then it wrote nothing while it ran: the table is gone
    assert not (engine.state_dir / "engine" / "dynamodb.json").exists()
    assert "written-before-a-crash" not in engine.tables()


def test_a_clean_stop_keeps_the_tables_but_not_the_sent_mail(engine: BareEngine) -> None:
    # Given a table with an item and a mail sent, on the bare engine
    engine.write("written-before-a-stop")
    engine.send_mail()
    assert len(engine.outbox()) == 1

    # When the engine stops cleanly (SIGTERM), then starts again
    engine.stop(signal.SIGTERM)
    engine.start()

    # Then the table is back, and the outbox is empty
    assert "written-before-a-stop" in engine.tables()
    assert engine.outbox() == []
