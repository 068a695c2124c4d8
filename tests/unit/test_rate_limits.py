"""kumo.core.rate_limit and the limits of the mail-sending and sign-in routes (ADR 24)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from kumo.core import abuse_limits, clock, rate_limit
from kumo.core.ids import new_id
from kumo.core.rate_limit import Limit, RateLimited
from kumo.identity import passwords
from kumo.identity.models import RateCounterModel
from kumo.orgs import service as orgs
from kumo.orgs.models import (
    InvitationModel,
    PendingInvitationModel,
    invitee_sort_key,
    org_key,
)
from kumo.orgs.models import RateCounterModel as OrgsRateCounterModel

from tests.support.factories import PASSWORD, new_org, unique_email, verified_user
from tests.unit.conftest import QUEUE_URL

pytestmark = pytest.mark.usefixtures("aws")

LOGIN = ("identity/login", "POST", "/api/v1/auth/login")
FORGOT = ("identity/password_forgot", "POST", "/api/v1/auth/password/forgot")
RESEND = ("identity/resend_verification", "POST", "/api/v1/auth/verify-email/resend")
REGISTER = ("identity/register", "POST", "/api/v1/auth/register")
WRONG = "not the password 1"
# The start of an hour: every window of every limit starts here.
T0 = 1_900_000_800.0


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The clock at T0; set `moment[0]` to move it."""
    moment = [T0]
    monkeypatch.setattr(clock, "now", lambda: moment[0])
    return moment


def small(monkeypatch: pytest.MonkeyPatch, name: str, limit: int) -> Limit:
    """The named limit of kumo.core.abuse_limits, with a smaller allowance for this test."""
    original: Limit = getattr(abuse_limits, name)
    smaller = Limit(original.name, limit, original.window_seconds, original.counts)
    monkeypatch.setattr(abuse_limits, name, smaller)
    return smaller


def mails_queued() -> list[str]:
    """Ids of the e-mail tasks queued since the last call."""
    sqs = boto3.client("sqs")
    ids = []
    while messages := sqs.receive_message(QueueUrl=QUEUE_URL, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            ids.append(json.loads(message["Body"])["task_id"])
            sqs.delete_message(QueueUrl=QUEUE_URL, ReceiptHandle=message["ReceiptHandle"])
    return ids


def statuses(responses: list[dict[str, Any]]) -> list[int]:
    return [r["statusCode"] for r in responses]


# --- the mechanism ------------------------------------------------------------------------

LIMIT = Limit("test.limit", 3, 3600, "test units")


def test_spend_allows_the_limit_then_refuses_until_the_window_ends(frozen_clock):
    # Given a subject that spent its three units, 15 minutes into the hour
    frozen_clock[0] = T0 + 900
    for _ in range(3):
        rate_limit.spend(RateCounterModel, LIMIT, "subject")

    # When it spends a fourth
    with pytest.raises(RateLimited) as refused:
        rate_limit.spend(RateCounterModel, LIMIT, "subject")

    # Then it is a 429 that says when the window ends, and names the limit
    error = refused.value
    assert error.status == 429
    assert error.headers == {"Retry-After": "2700"}
    assert error.extra == {"retry_after": 2700, "limit": "test.limit"}
    assert "At most 3 test units per hour" in error.detail


def test_spend_starts_afresh_in_the_next_window(frozen_clock):
    # Given a subject at its limit
    for _ in range(3):
        rate_limit.spend(RateCounterModel, LIMIT, "subject")

    # When the window has passed
    frozen_clock[0] = T0 + 3600

    # Then it may spend again, and other subjects never shared its counter
    rate_limit.spend(RateCounterModel, LIMIT, "subject")
    rate_limit.spend(RateCounterModel, LIMIT, "another subject")


def test_a_refused_spend_changes_nothing():
    # Given a subject at its limit
    for _ in range(3):
        spent = rate_limit.spend(RateCounterModel, LIMIT, "subject")

    # When it is refused
    with pytest.raises(RateLimited):
        rate_limit.spend(RateCounterModel, LIMIT, "subject")

    # Then the counter still holds three
    assert RateCounterModel.get(spent.pk, spent.sk).hits == 3


def test_counter_expires_after_its_window_and_keeps_no_subject_in_its_key():
    # When an address spends a unit
    spent = rate_limit.spend(RateCounterModel, LIMIT, "ada@example.com")

    # Then its counter expires (the table's TTL attribute) a minute after the window ends
    item = RateCounterModel.get(spent.pk, spent.sk)
    assert item.expires_at == T0 + 3600 + 60
    assert spent.sk == f"WINDOW#{int(T0)}"
    assert "ada" not in spent.pk and spent.pk.startswith("RATE#test.limit#")


def test_refund_gives_the_unit_back():
    # Given a subject at its limit
    spent = [rate_limit.spend(RateCounterModel, LIMIT, "subject") for _ in range(3)]

    # When one unit is handed back
    spent[0].refund()

    # Then one more spend is allowed, and only one
    rate_limit.spend(RateCounterModel, LIMIT, "subject")
    with pytest.raises(RateLimited):
        rate_limit.spend(RateCounterModel, LIMIT, "subject")


def test_spend_all_hands_back_what_it_spent_when_a_later_limit_refuses():
    # Given a second limit already exhausted
    other = Limit("test.other", 1, 3600, "other units")
    rate_limit.spend(RateCounterModel, other, "b")

    # When both are spent together, three times over
    for _ in range(3):
        with pytest.raises(RateLimited):
            rate_limit.spend_all(RateCounterModel, [(LIMIT, "a"), (other, "b")])

    # Then the first limit lost nothing to the refusals
    for _ in range(3):
        rate_limit.spend(RateCounterModel, LIMIT, "a")


# --- mail: password reset, verification resend, sign-up -----------------------------------


@pytest.mark.parametrize("route", [FORGOT, RESEND], ids=["forgot", "resend"])
def test_mail_routes_answer_alike_for_known_and_unknown_addresses(call_api, route):
    # Given an unverified account and an address nobody uses
    from kumo.identity import service

    known = unique_email("known")
    service.register(email=known, password=PASSWORD, display_name="Ada")
    unknown = unique_email("unknown")

    # When each is asked for five times
    answers = {
        email: [call_api(*route, body={"email": email}) for _ in range(5)]
        for email in (known, unknown)
    }

    # Then both see three 202s, then 429 problems with the same detail and Retry-After
    for responses in answers.values():
        assert statuses(responses) == [202, 202, 202, 429, 429]
    refused = [answers[email][3] for email in (known, unknown)]
    assert refused[0]["json"]["detail"] == refused[1]["json"]["detail"]
    assert refused[0]["json"]["type"] == "urn:kumo:problem:rate-limited"
    assert refused[0]["multiValueHeaders"]["Retry-After"] == ["3600"]
    assert refused[0]["multiValueHeaders"]["Content-Type"] == ["application/problem+json"]


def test_forgot_password_mails_an_address_at_most_three_times_an_hour(call_api, frozen_clock):
    # Given a verified account
    email = unique_email("bombed")
    verified_user(email)

    # When a reset is asked for ten times within the hour
    for _ in range(10):
        call_api(*FORGOT, body={"email": email})

    # Then three mails are queued, and an hour later a fourth may be
    assert len(mails_queued()) == 3
    frozen_clock[0] = T0 + 3600
    assert call_api(*FORGOT, body={"email": email})["statusCode"] == 202
    assert len(mails_queued()) == 1


def test_resend_verification_mails_an_address_at_most_three_times_an_hour(call_api):
    from kumo.identity import service

    email = unique_email("unverified")
    service.register(email=email, password=PASSWORD, display_name="Ada")
    mails_queued()

    for _ in range(10):
        call_api(*RESEND, body={"email": email})

    assert len(mails_queued()) == 3


def test_mail_routes_limit_each_source(call_api, monkeypatch):
    # Given a source allowed two reset requests
    small(monkeypatch, "FORGOT_PER_SOURCE", 2)

    # When it asks for three different addresses
    answers = [
        call_api(*FORGOT, body={"email": unique_email("spray")}, source_ip="198.51.100.7")
        for _ in range(3)
    ]

    # Then the third is refused, while another source is not
    assert statuses(answers) == [202, 202, 429]
    other = call_api(*FORGOT, body={"email": unique_email("spray")}, source_ip="198.51.100.8")
    assert other["statusCode"] == 202


def test_an_address_refused_costs_its_source_nothing(call_api, monkeypatch):
    # Given a source allowed four reset requests
    small(monkeypatch, "FORGOT_PER_SOURCE", 4)
    email = unique_email("bombed")

    # When it asks five times for one address (three pass, two are refused for the address)
    for _ in range(5):
        call_api(*FORGOT, body={"email": email})

    # Then it may still ask for another address once
    assert call_api(*FORGOT, body={"email": unique_email("other")})["statusCode"] == 202


def test_register_limits_sign_ups_from_one_source(call_api, monkeypatch):
    # Given a source allowed two sign-ups, one of whose attempts hits a taken address
    small(monkeypatch, "REGISTER_PER_SOURCE", 2)
    taken = unique_email("taken")
    verified_user(taken)

    def sign_up(email: str) -> int:
        body = {"email": email, "password": PASSWORD, "display_name": "Ada"}
        return int(call_api(*REGISTER, body=body)["statusCode"])

    # Then the taken address costs nothing, and the third account is refused
    assert [sign_up(taken), sign_up(unique_email("a")), sign_up(unique_email("b"))] == [
        409,
        201,
        201,
    ]
    assert sign_up(unique_email("c")) == 429


# --- sign-in ------------------------------------------------------------------------------


def login(call_api: Any, email: str, password: str = PASSWORD, source: str = "203.0.113.10"):
    return call_api(*LOGIN, body={"email": email, "password": password}, source_ip=source)


def test_login_checks_at_most_five_passwords_per_account_and_source(call_api, monkeypatch):
    # Given a count of the password hashes checked
    checked = []
    verify = passwords.verify_password
    monkeypatch.setattr(
        passwords, "verify_password", lambda h, p: checked.append(p) or verify(h, p)
    )
    email = unique_email("guessed")
    verified_user(email)

    # When one source guesses twenty times
    answers = [login(call_api, email, WRONG) for _ in range(20)]

    # Then five passwords were checked, the rest refused before any check
    assert statuses(answers) == [401] * 5 + [429] * 15
    assert len(checked) == 5
    assert answers[5]["json"]["limit"] == "login.account-source"


def test_login_guesses_from_one_source_do_not_lock_the_owner_out(call_api):
    # Given an attacker's source that spent its guesses at an account
    email = unique_email("owner")
    verified_user(email)
    for _ in range(6):
        login(call_api, email, WRONG, source="198.51.100.66")

    # When the owner signs in from their own source
    owner = login(call_api, email, source="203.0.113.10")

    # Then they are in, while the attacker's source is still refused the right password
    assert owner["statusCode"] == 200
    assert login(call_api, email, source="198.51.100.66")["statusCode"] == 429


def test_login_answers_alike_for_unknown_and_real_accounts(call_api):
    # Given a real account and an address nobody uses
    real = unique_email("real")
    verified_user(real)
    unknown = unique_email("ghost")

    # When each is guessed seven times from one source
    answers = {
        email: [login(call_api, email, WRONG) for _ in range(7)] for email in (real, unknown)
    }

    # Then the answers are the same, refusals included
    assert statuses(answers[real]) == statuses(answers[unknown]) == [401] * 5 + [429] * 2
    for index in (0, 6):
        assert answers[real][index]["json"]["detail"] == answers[unknown][index]["json"]["detail"]


def test_login_with_the_right_password_costs_no_allowance(call_api):
    # Given four wrong guesses from a source
    email = unique_email("typo")
    verified_user(email)
    for _ in range(4):
        login(call_api, email, WRONG)

    # When the owner signs in many times from it
    signed_in = [login(call_api, email) for _ in range(10)]

    # Then every sign-in works, and one more wrong guess is still only a 401
    assert statuses(signed_in) == [200] * 10
    assert login(call_api, email, WRONG)["statusCode"] == 401


def test_login_slows_down_guesses_at_one_account_from_many_sources(call_api, frozen_clock):
    # Given ten wrong guesses at an account, each from another source
    email = unique_email("botnet")
    verified_user(email)
    for n in range(10):
        assert login(call_api, email, WRONG, source=f"198.51.100.{n}")["statusCode"] == 401

    # When the owner tries within the same five minutes, then after them
    slowed = login(call_api, email, source="203.0.113.10")
    frozen_clock[0] = T0 + 300
    later = login(call_api, email, source="203.0.113.10")

    # Then the owner waits at most five minutes, and is in after that
    assert slowed["statusCode"] == 429
    assert slowed["json"]["limit"] == "login.account"
    assert 0 < int(slowed["multiValueHeaders"]["Retry-After"][0]) <= 300
    assert later["statusCode"] == 200


def test_login_limits_failed_sign_ins_from_one_source_over_many_accounts(call_api, monkeypatch):
    # Given a source allowed three failed sign-ins
    small(monkeypatch, "LOGIN_PER_SOURCE", 3)

    # When it guesses at four accounts
    answers = [login(call_api, unique_email("sprayed"), WRONG) for _ in range(4)]

    # Then the fourth is refused
    assert statuses(answers) == [401, 401, 401, 429]


# --- invitations --------------------------------------------------------------------------


def invite(org_id: str, owner_id: str, email: str) -> None:
    orgs.invite_member(org_id=org_id, actor_id=owner_id, actor_email="", email=email, role="member")


def pending_for(org_id: str, email: str) -> list[InvitationModel]:
    return [i for i in InvitationModel.query(org_key(org_id)) if i.email == email]


def test_invitations_mail_an_address_at_most_three_times_an_hour():
    # Given an org and an address invited three times
    owner_id = new_id()
    org_id = new_org(owner_id, unique_email("owner"))
    email = unique_email("invitee")
    for _ in range(3):
        invite(org_id, owner_id, email)

    # When it is invited a fourth time
    with pytest.raises(RateLimited):
        invite(org_id, owner_id, email)

    # Then three mails went out and one invitation is pending, named by the address pointer
    assert len(mails_queued()) == 3
    (pending,) = pending_for(org_id, email)
    pointer = PendingInvitationModel.get(org_key(org_id), invitee_sort_key(email))
    assert pointer.invitation_id == pending.invitation_id


def test_invitations_limit_each_inviter(monkeypatch):
    small(monkeypatch, "INVITE_PER_INVITER", 2)
    owner_id = new_id()
    org_id = new_org(owner_id, unique_email("owner"))
    invite(org_id, owner_id, unique_email("a"))
    invite(org_id, owner_id, unique_email("b"))

    with pytest.raises(RateLimited):
        invite(org_id, owner_id, unique_email("c"))


def test_a_refused_invitation_costs_no_allowance():
    # Given a member of an org
    from kumo.orgs.errors import AlreadyMember

    from tests.support.factories import add_member

    owner_id = new_id()
    org_id = new_org(owner_id, unique_email("owner"))
    member_email = unique_email("member")
    add_member(org_id, new_id(), member_email, "member")

    # When the member's address is invited five times (each an already-member conflict)
    for _ in range(5):
        with pytest.raises(AlreadyMember):
            invite(org_id, owner_id, member_email)

    # Then nothing was mailed, and no allowance of the address was spent
    assert mails_queued() == []
    counters = OrgsRateCounterModel.query(
        rate_limit.counter_key(abuse_limits.INVITE_PER_ADDRESS, member_email)
    )
    assert sum(counter.hits for counter in counters) == 0


def test_a_revoked_invitation_leaves_no_pointer_behind():
    owner_id = new_id()
    org_id = new_org(owner_id, unique_email("owner"))
    email = unique_email("invitee")
    invite(org_id, owner_id, email)
    (pending,) = pending_for(org_id, email)

    orgs.revoke_invitation(org_id=org_id, actor_id=owner_id, invitation_id=pending.invitation_id)

    assert (
        PendingInvitationModel.count(
            org_key(org_id), PendingInvitationModel.sk.startswith("INVITEE#")
        )
        == 0
    )


def test_an_invitation_that_loses_a_race_replaces_the_winner(monkeypatch):
    # Given an invitation that, between reading the address's pending invitations and writing
    # its own, meets another invitation to the same address
    owner_id = new_id()
    org_id = new_org(owner_id, unique_email("owner"))
    email = unique_email("invitee")
    real_query = orgs._pending_invitations_for
    raced: list[str] = []

    def query_then_race(org: str, address: str) -> list[InvitationModel]:
        # The query's answer is stale by the time this request writes: what two concurrent
        # invitations that each read before the other wrote see.
        answer = real_query(org, address)
        if not raced:
            raced.append("racing")
            winner, _, _ = orgs._replace_invitation(org, owner_id, address, "viewer")
            raced[0] = winner.invitation_id
        return answer

    monkeypatch.setattr(orgs, "_pending_invitations_for", query_then_race)

    # When it is sent
    invitation = orgs.invite_member(
        org_id=org_id, actor_id=owner_id, actor_email="", email=email, role="member"
    )

    # Then it replaced the winner: one invitation is pending, and it is this one
    assert [i.invitation_id for i in pending_for(org_id, email)] == [invitation.invitation_id]
    assert raced[0] not in ("racing", invitation.invitation_id)


def test_device_registration_is_limited_per_user(monkeypatch):
    # Given an org admin allowed one registration an hour
    from tests.support.factories import register_device

    small(monkeypatch, "DEVICE_REGISTER_PER_USER", 1)
    owner_id = new_id()
    org_id = new_org(owner_id, unique_email("owner"))
    register_device(org_id, owner_id, "first")

    # When a second device is registered, it is refused
    with pytest.raises(RateLimited):
        register_device(org_id, owner_id, "second")
