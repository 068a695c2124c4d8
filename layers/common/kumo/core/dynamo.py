"""DynamoDB helpers every context shares: reads that may miss, conditional updates, guarded
transactions, failed conditions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from kumo.core import aws
from kumo.core.errors import Conflict, KumoError

# Called after a transaction was cancelled: re-reads and names the rule it broke, or None.
Explain = Callable[[], KumoError | None]


def get_or_none[M: Model](
    model: type[M],
    hash_key: Any,
    range_key: Any | None = None,
    *,
    consistent_read: bool = False,
    attributes_to_get: Sequence[str] | None = None,
) -> M | None:
    """The item, or None when there is none: most callers answer a miss with a 404 of their own."""
    try:
        return model.get(
            hash_key,
            range_key,
            consistent_read=consistent_read,
            attributes_to_get=attributes_to_get,
        )
    except DoesNotExist:
        return None


def conditional_update(item: Model, *, actions: list[Action], condition: Condition) -> bool:
    """Apply `actions` if `condition` holds (True). Otherwise (False) `item` is re-read, so
    the caller goes on from what another writer left rather than from its stale copy."""
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as error:
        if not condition_failed(error):
            raise
        item.refresh(consistent_read=True)
        return False
    return True


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
