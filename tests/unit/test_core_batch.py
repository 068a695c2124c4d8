"""kumo.core.batch: the one SQS batch idiom (partial batch failures)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from kumo.core import batch

ROOT = Path(__file__).resolve().parents[2]
CONSUMERS = [
    "tasks/mailer",
    "tasks/webhook_worker",
    "devices/ingest_command_results",
    "devices/ingest_config_reports",
    "devices/sync_config_shadow",
]


def record(message_id: str, body: str = "{}") -> dict[str, Any]:
    return {"messageId": message_id, "body": body}


def test_failed_message_ids_names_only_the_records_that_raised():
    # Given a handler that fails the second record
    def handle(item: dict[str, Any]) -> None:
        if item["messageId"] == "m2":
            raise RuntimeError("boom")

    # When a batch of three runs
    failed = batch.failed_message_ids([record("m1"), record("m2"), record("m3")], handle, what="x")

    # Then only that record comes back
    assert failed == ["m2"]


def test_a_retry_request_comes_back_without_a_stack_trace(caplog):
    def handle(item: dict[str, Any]) -> None:
        raise batch.Retry

    failed = batch.failed_message_ids([record("m1")], handle, what="webhook")

    assert failed == ["m1"]
    assert "not recorded" not in caplog.text


def test_parallel_records_run_side_by_side():
    # Given a handler that only returns once two records are in it at the same time
    together = threading.Barrier(2, timeout=5)

    def handle(item: dict[str, Any]) -> None:
        together.wait()

    # When both run in parallel
    failed = batch.failed_message_ids([record("a"), record("b")], handle, what="x", parallel=True)

    # Then neither timed out waiting for the other
    assert failed == []


def test_partial_failures_is_the_answer_sqs_reads():
    assert batch.partial_failures(["m1"]) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert batch.partial_failures([]) == {"batchItemFailures": []}


def test_a_batch_that_failed_whole_fails_the_invocation_when_asked():
    with pytest.raises(BatchProcessingError):
        batch.partial_failures(["m1", "m2"], batch_size=2)
    assert batch.partial_failures(["m1"], batch_size=2) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}]
    }


@pytest.mark.parametrize("function", CONSUMERS)
def test_queue_consumers_answer_through_the_one_idiom(function: str):
    # Given a queue consumer's handler
    source = (ROOT / "functions" / function / "app.py").read_text()

    # Then it answers with kumo.core.batch, never a response built by hand
    assert "batch.partial_failures(" in source
    assert "batchItemFailures" not in source
