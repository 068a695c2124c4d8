"""kumo.core.metrics: counters printed as one CloudWatch EMF line per invocation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kumo.core import metrics

from infra.environment import handlers, kumo_modules


def emf_documents(out: str) -> list[dict[str, Any]]:
    """The EMF lines among what was printed (log lines are JSON too, without `_aws`)."""
    documents = []
    for line in out.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            documents.append(document)
    return documents


def total(document: dict[str, Any], name: str) -> float:
    """A metric's value in one EMF line: a list when counted more than once."""
    value = document[name]
    return float(sum(value)) if isinstance(value, list) else float(value)


def metric_names(document: dict[str, Any]) -> set[str]:
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    return {metric["Name"] for metric in directive["Metrics"]}


@pytest.fixture(autouse=True)
def nothing_pending(capsys: pytest.CaptureFixture[str]) -> None:
    """Counts left by earlier tests that called services without a handler are not ours."""
    metrics.flush()
    capsys.readouterr()


def test_flush_prints_one_emf_line_with_the_counts_summed_per_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given two counts of one metric and one of another
    metrics.count(metrics.READINGS_ACCEPTED, 3)
    metrics.count(metrics.READINGS_ACCEPTED, 2)
    metrics.count(metrics.MAILS_SENT)

    # When the invocation ends
    metrics.flush()

    # Then one EMF line carries both, in the Kumo namespace, dimensioned by service and stage
    (document,) = emf_documents(capsys.readouterr().out)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Kumo"
    assert [sorted(dimensions) for dimensions in directive["Dimensions"]] == [["service", "stage"]]
    assert (document["service"], document["stage"]) == ("kumo", "test")
    assert metric_names(document) == {"ReadingsAccepted", "MailsSent"}
    assert (total(document, "ReadingsAccepted"), total(document, "MailsSent")) == (5, 1)


def test_flush_prints_nothing_when_nothing_was_counted(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.flush()
    assert emf_documents(capsys.readouterr().out) == []


def test_flush_starts_the_next_invocation_from_zero(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an invocation that counted and flushed
    metrics.count(metrics.MAILS_SENT)
    metrics.flush()
    capsys.readouterr()

    # When the next one counts something else
    metrics.count(metrics.COMMANDS_SENT)
    metrics.flush()

    # Then only that is printed
    (document,) = emf_documents(capsys.readouterr().out)
    assert metric_names(document) == {"CommandsSent"}


def test_flushed_handler_prints_its_counts_even_when_it_raises(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a handler that counts, then fails
    @metrics.flushed
    def lambda_handler(event: dict[str, Any], context: object) -> None:
        metrics.count(metrics.WEBHOOKS_RETRIED)
        raise RuntimeError("boom")

    # When it is invoked
    with pytest.raises(RuntimeError):
        lambda_handler({}, None)

    # Then what it counted was printed all the same
    (document,) = emf_documents(capsys.readouterr().out)
    assert total(document, "WebhooksRetried") == 1


def test_every_handler_that_can_count_flushes() -> None:
    # Given every function whose kumo modules count a metric
    counting = [
        handler
        for handler in handlers()
        if any("metrics.count(" in path.read_text() for path in kumo_modules(handler))
    ]

    # Then each flushes at the end of an invocation: through http_handler, or its decorator
    assert counting, "no function counts anything: the check would prove nothing"
    unflushed = [
        str(handler)
        for handler in counting
        if not any(
            marker in handler.read_text() for marker in ("http_handler(app)", "@metrics.flushed")
        )
    ]
    assert unflushed == []
