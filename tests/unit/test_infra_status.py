"""`make status` sums the operations metrics from the EMF lines the functions print."""

from __future__ import annotations

import pytest
from kumo.core import metrics

from infra.local.status import _emf_values


def test_the_counts_of_an_invocation_are_read_back_from_its_log_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics.flush()
    capsys.readouterr()
    metrics.count(metrics.READINGS_ACCEPTED, 3)
    metrics.count(metrics.READINGS_ACCEPTED, 2)
    metrics.count(metrics.READINGS_REJECTED)
    metrics.flush()
    (line,) = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    # The engine's log events carry the line after a timestamp and request id.
    logged = f"2026-12-03T10:00:00.000Z\tc0ffee\t{line}"
    assert _emf_values(logged) == {"ReadingsAccepted": 5.0, "ReadingsRejected": 1.0}


def test_lines_that_are_not_emf_count_nothing() -> None:
    assert _emf_values('{"level": "INFO", "message": "hello"}') == {}
    assert _emf_values('{"_aws": broken') == {}
