"""DynamoDB write helpers every context shares: guarded transactions, failed conditions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from kumo.core import aws
from kumo.core.errors import Conflict, KumoError

# Called after a transaction was cancelled: re-reads and names the rule it broke, or None.
Explain = Callable[[], KumoError | None]


@contextmanager
def transaction(explain: Explain, *, changed: str) -> Iterator[TransactWrite]:
    """A write transaction whose cancellation becomes the problem its conditions guard.

    The conditions decide atomically; only after one failed do we re-read to say which rule
    the request broke. What explains nothing was a concurrent change (`changed`, a 409 the
    client retries).
    """
    try:
        with TransactWrite(connection=aws.dynamodb()) as write:
            yield write
    except TransactWriteError as error:
        if error.cause_response_code != "TransactionCanceledException":
            raise
        raise (explain() or Conflict(changed)) from error


def condition_failed(error: PynamoDBException) -> bool:
    return error.cause_response_code == "ConditionalCheckFailedException"
