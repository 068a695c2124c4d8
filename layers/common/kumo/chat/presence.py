"""Presence: online, away or offline per user, shown to the channels they belong to (ADR 29).

A client sends a heartbeat (`presence` on the WebSocket API) every 15 to 20 seconds with what
it shows: online or away, or offline when it closes. A heartbeat counts for
`presence_window_seconds`; past that its sender is offline whatever it said, so a `$disconnect`
that never came (it is best effort on AWS) cannot keep anyone online. Readers go by that
deadline (`fresh_until`), never by DynamoDB's TTL, which removes items late.

Changes are pushed to every channel the user is a member of, not heartbeats: an item records
what the channels were last told (`told_status`), and a change is told at most once every
PUSH_GAP_SECONDS per user (the next heartbeat tells one held back). The sweep (EventBridge,
each minute) tells the channels of users whose deadline passed: they sit in a sparse index by
deadline, in shards, as devices do, so it reads exactly those, never a Scan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final, Literal

from aws_lambda_powertools import Logger
from pynamodb.exceptions import UpdateError
from pynamodb.expressions.update import Action

from kumo.chat import access, live
from kumo.chat.models import (
    META,
    MembershipModel,
    PresenceModel,
    RateCounterModel,
    presence_key,
    present_key,
    user_key,
)
from kumo.chat.schemas import PresenceOut
from kumo.core import abuse_limits as limits
from kumo.core import clock, dynamo, rate_limit
from kumo.core.config import get_settings

logger = Logger(child=True)

Status = Literal["online", "away", "offline"]
PUSH_GAP_SECONDS: Final = 5.0
# Shards of the index of users who may still be online: each heartbeat moves its user's
# entry, so one partition would cap the heartbeats a second the table takes.
SHARDS: Final = 8
# An item outlives its deadline by a day: the throttle's memory (what was told, and when).
KEEP_SECONDS: Final = 86_400


def _shard(user_id: str) -> int:
    return int(hashlib.sha256(user_id.encode()).hexdigest()[:8], 16) % SHARDS


def _deadline_key(fresh_until: float, user_id: str) -> str:
    return f"{int(fresh_until * 1000):015d}#{user_id}"


def status_of(item: PresenceModel | None, now: float) -> Status:
    if item is None or float(item.fresh_until) <= now or item.status == "offline":
        return "offline"
    return "away" if item.status == "away" else "online"


def presence_out(user_id: str, item: PresenceModel | None, now: float) -> PresenceOut:
    status = status_of(item, now)
    return PresenceOut(
        user_id=user_id,
        status=status,
        seen_at=item.seen_at if item else None,
        until=clock.utc_iso(float(item.fresh_until)) if item and status != "offline" else None,
    )


def heartbeat(user_id: str, status: Status, *, connection_id: str | None = None) -> PresenceOut:
    """Record what the user's client shows; tell their channels if that is a change. A frame
    from a connection spends its allowance first."""
    if connection_id:
        rate_limit.spend(RateCounterModel, limits.PRESENCE_PER_CONNECTION, connection_id)
    now = clock.now()
    fresh_until = now if status == "offline" else now + get_settings().presence_window_seconds
    item = PresenceModel(presence_key(user_id), META)
    actions: list[Action] = [
        PresenceModel.status.set(status),
        PresenceModel.seen_at.set(clock.utc_iso(now)),
        PresenceModel.fresh_until.set(fresh_until),
        PresenceModel.expires_at.set(int(fresh_until) + KEEP_SECONDS),
    ]
    # In the sweep's index until told offline: an offline heartbeat whose telling the gap
    # holds back has a deadline of now, so the next sweep tells it.
    actions += [
        PresenceModel.gsi1pk.set(present_key(_shard(user_id))),
        PresenceModel.gsi1sk.set(_deadline_key(fresh_until, user_id)),
    ]
    item.update(actions=actions)  # answers the whole item: what was told, and when
    shown = status_of(item, now)
    if item.told_status != shown and now - float(item.told_at) >= PUSH_GAP_SECONDS:
        _tell(user_id, item, shown, now)
    return presence_out(user_id, item, now)


def _tell(user_id: str, item: PresenceModel, status: Status, now: float) -> None:
    """Tell the user's channels, once: of two heartbeats at once, one records the telling."""
    told_at = float(item.told_at)
    condition = (
        (PresenceModel.told_at == told_at) if told_at else PresenceModel.told_at.does_not_exist()
    )
    actions: list[Action] = [PresenceModel.told_status.set(status), PresenceModel.told_at.set(now)]
    if status == "offline":  # told: the sweep has nothing left to tell
        actions += [PresenceModel.gsi1pk.remove(), PresenceModel.gsi1sk.remove()]
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as error:
        if dynamo.condition_failed(error):
            return
        raise
    until = clock.utc_iso(float(item.fresh_until)) if status != "offline" else None
    _push(user_id, {"event": "presence", "user_id": user_id, "status": status, "until": until})


def _push(user_id: str, message: dict[str, object]) -> None:
    for membership in MembershipModel.by_user.query(user_key(user_id)):
        live.tell_channel(membership.org_id, membership.channel_id, message)


def sweep() -> int:
    """Tell the channels of every user whose heartbeat ran out; how many."""
    now = clock.now()
    told = 0
    for shard in range(SHARDS):
        for item in PresenceModel.present.query(
            present_key(shard), PresenceModel.gsi1sk < _deadline_key(now, "")
        ):
            if _mark_offline(item, now):
                told += 1
    if told:
        logger.info("presence swept", offline=told)
    return told


def _mark_offline(item: PresenceModel, now: float) -> bool:
    user_id = item.pk.removeprefix(presence_key(""))
    already = item.told_status == "offline"
    try:
        # Unless a heartbeat came since the index was read (it moves the deadline).
        item.update(
            actions=[
                PresenceModel.told_status.set("offline"),
                PresenceModel.told_at.set(now),
                PresenceModel.gsi1pk.remove(),
                PresenceModel.gsi1sk.remove(),
            ],
            condition=PresenceModel.fresh_until == item.fresh_until,
        )
    except UpdateError as error:
        if dynamo.condition_failed(error):
            return False
        raise
    if already:  # told before its last heartbeat, which was held back by the gap
        return False
    _push(user_id, {"event": "presence", "user_id": user_id, "status": "offline", "until": None})
    return True


def of_users(user_ids: Iterable[str]) -> dict[str, PresenceModel]:
    keys = [(presence_key(user_id), META) for user_id in dict.fromkeys(user_ids)]
    if not keys:
        return {}
    found = PresenceModel.batch_get(keys)
    return {item.pk.removeprefix(presence_key("")): item for item in found}


def channel_presence(
    *, user_id: str, channel_id: str, limit: int | None, cursor: str | None
) -> tuple[list[PresenceOut], str | None]:
    """A page of the channel's members, each with their presence."""
    # Here, not at the top: the heartbeat's function needs no password hashing.
    from kumo.chat.channels import members

    page, next_cursor = members(user_id=user_id, channel_id=channel_id, limit=limit, cursor=cursor)
    found = of_users(m.user_id for m in page)
    now = clock.now()
    return [presence_out(m.user_id, found.get(m.user_id), now) for m in page], next_cursor


def typing(user_id: str, channel_id: str, *, connection_id: str | None = None) -> None:
    """Pass a typing notice to the channel's other viewers; nothing is stored."""
    if connection_id:
        rate_limit.spend(RateCounterModel, limits.TYPING_PER_CONNECTION, connection_id)
    channel, _ = access.member_channel(user_id, channel_id)
    live.tell_channel(
        channel.org_id,
        channel_id,
        {"event": "typing", "channel_id": channel_id, "user_id": user_id, "at": clock.utc_iso()},
    )
