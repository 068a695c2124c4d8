"""The one rate limiter: fixed-window counters in DynamoDB, each spent with one conditional
UpdateItem (docs/adr/0024).

A counter lives in the table of the context that applies the limit (its `RateCounterModel`),
so no function needs another context's table. Its key is
`RATE#<limit name>#<sha256 of the subject>` / `WINDOW#<window start>`, and its `expires_at`
(the tables' TTL attribute) is the window's end plus a minute, so DynamoDB drops it on its own.

`spend` adds one to the subject's counter only while it is below the limit, in the same
request that checks it: of any number of concurrent requests exactly `limit` get through.
Over the limit it raises `RateLimited` (429, `Retry-After` = seconds until the window ends).
A spent unit can be handed back (`Spent.refund`) when what it guarded did not happen, or,
for sign-ins, went right. The limits themselves are declared in `kumo.core.abuse_limits`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import UpdateError
from pynamodb.models import Model

from kumo.core import clock, dynamo
from kumo.core.errors import TooManyRequests

_EXPIRY_SLACK_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `limit` units per `subject` in each fixed window of `window_seconds`."""

    name: str
    limit: int
    window_seconds: int
    # Said in the 429's detail: what the limit counts, e.g. "reset e-mails to this address".
    counts: str


class RateLimited(TooManyRequests):
    slug, title = "rate-limited", "Too many requests"


@dataclass(frozen=True, slots=True)
class Spent:
    """One unit spent from one window of one counter."""

    model: type[Model]
    pk: str
    sk: str

    def refund(self) -> None:
        """Give the unit back; a counter already gone (expired) is left alone."""
        counter: Any = self.model
        try:
            counter(self.pk, self.sk).update(
                actions=[counter.hits.add(-1)], condition=counter.hits > 0
            )
        except UpdateError as error:
            if not dynamo.condition_failed(error):
                raise


def counter_key(limit: Limit, subject: str) -> str:
    # Hashed: subjects are caller-supplied (addresses, IPs) and need a bounded key.
    digest = hashlib.sha256(subject.encode()).hexdigest()
    return f"RATE#{limit.name}#{digest}"


def _window(limit: Limit, moment: float) -> tuple[int, int]:
    start = int(moment // limit.window_seconds) * limit.window_seconds
    return start, start + limit.window_seconds


def spend(model: type[Model], limit: Limit, subject: str) -> Spent:
    """Spend one unit of `subject`'s allowance, or raise `RateLimited` and change nothing.
    `model` is the context's `RateCounterModel`: an item of its table with a number `hits`
    and `expires_at` (kumo.identity.models.RateCounterModel)."""
    counter: Any = model
    moment = clock.now()
    start, end = _window(limit, moment)
    pk, sk = counter_key(limit, subject), f"WINDOW#{start}"
    try:
        counter(pk, sk).update(
            actions=[counter.hits.add(1), counter.expires_at.set(end + _EXPIRY_SLACK_SECONDS)],
            condition=counter.hits.does_not_exist() | (counter.hits < limit.limit),
        )
    except UpdateError as error:
        if not dynamo.condition_failed(error):
            raise
        retry_after = max(1, math.ceil(end - moment))
        raise RateLimited(
            f"At most {limit.limit} {limit.counts} per {_duration(limit.window_seconds)}; "
            f"try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
            limit=limit.name,
        ) from error
    return Spent(model, pk, sk)


def spend_all(model: type[Model], spends: Iterable[tuple[Limit, str]]) -> list[Spent]:
    """Spend from several limits in order; when one refuses, what the earlier ones spent is
    handed back, so a refused request costs no allowance."""
    spent: list[Spent] = []
    try:
        for limit, subject in spends:
            spent.append(spend(model, limit, subject))
    except RateLimited:
        refund_all(spent)
        raise
    return spent


def refund_all(spent: Iterable[Spent]) -> None:
    for unit in spent:
        unit.refund()


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    if seconds % 60 == 0:
        minutes = seconds // 60
        return "minute" if minutes == 1 else f"{minutes} minutes"
    return f"{seconds} s"
