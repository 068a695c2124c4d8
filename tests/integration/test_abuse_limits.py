"""Abuse limits through the local gateway under bursts of parallel clients (ADR 24): the mail
routes send at most the allowed mails, concurrent guesses check at most the allowed passwords,
concurrent invitations leave one pending, and the real owner still signs in.

Each test speaks from a source of its own: the local engine takes a request's source IP from
`X-Forwarded-For` (a contract pinned below; on AWS the gateway ignores it), so the per-source
limits of one test do not spend another's."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.integration.conftest import (
    PASSWORD,
    Api,
    Outbox,
    signed_up_user,
    unique_email,
)

# Concurrent clients per burst: enough to race, few enough that the engine's cold starts
# (one worker process per concurrent request, two cores) stay within the functions' timeout.
CLIENTS = 10
# The allowances of kumo.core.abuse_limits that the bursts meet.
MAILS_PER_ADDRESS = 3
GUESSES_PER_ACCOUNT_AND_SOURCE = 5


def new_source() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def burst(
    api: Api, count: int, path: str, body: Callable[[int], dict[str, Any]], **headers: str
) -> list[requests.Response]:
    """`count` POSTs from CLIENTS parallel clients, each with its own connection.

    First CLIENTS parallel requests with an invalid body (422, which spends nothing) start the
    engine's worker processes, so the burst meets warm functions rather than cold starts that
    a busy machine can push past the function's timeout (a 502, issue 10 §3)."""

    def post(payload: dict[str, Any]) -> requests.Response:
        return requests.post(api.base + path, json=payload, headers=headers, timeout=60)

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        warm = list(pool.map(post, [{"warm": n} for n in range(CLIENTS)]))
        assert {r.status_code for r in warm} == {422}, [r.text for r in warm]
        return list(pool.map(post, [body(n) for n in range(count)]))


def statuses(responses: list[requests.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def mail_tasks_to(aws: Callable[[str], Any], stage: str, address: str) -> int:
    """E-mail tasks stored for `address`: each is written before its route answers, so the
    count is final when the burst is over (the outbox fills later, as the mailer runs)."""
    pages = (
        aws("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=f"kumo-{stage}-tasks",
            FilterExpression="recipient = :to",
            ExpressionAttributeValues={":to": {"S": address}},
        )
    )
    return sum(page["Count"] for page in pages)


def assert_refusals_are_problems(responses: list[requests.Response]) -> None:
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert 0 < int(refused.headers["Retry-After"]) <= 3600
        assert refused.json()["type"] == "urn:kumo:problem:rate-limited"


@pytest.fixture(scope="module")
def stage(endpoints: dict[str, Any]) -> str:
    return str(endpoints["stage"])


def test_engine_takes_the_source_ip_from_x_forwarded_for(api: Api, admin_token: str) -> None:
    # Given a failed sign-in that names a source in X-Forwarded-For
    source = new_source()
    failed = api.post(
        "/api/v1/auth/login",
        json={"email": unique_email("nobody"), "password": "wrong 12345678"},
        headers={"X-Forwarded-For": source},
    )
    assert failed.status_code == 401

    # Then the audit log records that address as its source
    audit = api.get("/api/v1/admin/audit", token=admin_token, params={"limit": 100}).json()
    assert source in {event.get("source_ip") for event in audit["items"]}


def test_fifty_reset_requests_send_three_mails(
    api: Api, outbox: Outbox, aws: Callable[[str], Any], stage: str
) -> None:
    # Given a verified account
    user = signed_up_user(api, outbox, "bombed")

    # When 50 resets are asked for its address at once
    answers = burst(
        api,
        50,
        "/api/v1/auth/password/forgot",
        lambda _: {"email": user["email"]},
        **{"X-Forwarded-For": new_source()},
    )

    # Then three are accepted, the rest refused as problems, and three mails go out
    assert statuses(answers) == {202: MAILS_PER_ADDRESS, 429: 50 - MAILS_PER_ADDRESS}
    assert_refusals_are_problems(answers)
    assert mail_tasks_to(aws, stage, user["email"]) == 1 + MAILS_PER_ADDRESS  # + verification
    outbox.wait_for(user["email"], "Reset", count=MAILS_PER_ADDRESS)


def test_reset_requests_for_an_unknown_address_answer_the_same(api: Api) -> None:
    # When ten resets are asked for an address nobody uses
    ghost = unique_email("ghost")
    answers = burst(
        api,
        10,
        "/api/v1/auth/password/forgot",
        lambda _: {"email": ghost},
        **{"X-Forwarded-For": new_source()},
    )

    # Then the answers are those a real account gets
    assert statuses(answers) == {202: MAILS_PER_ADDRESS, 429: 10 - MAILS_PER_ADDRESS}


def test_fifty_verification_resends_send_three_mails(
    api: Api, outbox: Outbox, aws: Callable[[str], Any], stage: str
) -> None:
    # Given an account that has not verified its address
    email = unique_email("unverified")
    created = api.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": "U"}
    )
    assert created.status_code == 201, created.text

    # When 50 resends are asked for at once
    answers = burst(
        api,
        50,
        "/api/v1/auth/verify-email/resend",
        lambda _: {"email": email},
        **{"X-Forwarded-For": new_source()},
    )

    # Then three more verification mails go out, besides the first
    assert statuses(answers) == {202: MAILS_PER_ADDRESS, 429: 50 - MAILS_PER_ADDRESS}
    assert_refusals_are_problems(answers)
    assert mail_tasks_to(aws, stage, email) == 1 + MAILS_PER_ADDRESS
    outbox.wait_for(email, "Confirm", count=1 + MAILS_PER_ADDRESS)


def test_thirty_invitations_to_one_address_leave_one_pending(
    api: Api, outbox: Outbox, aws: Callable[[str], Any], stage: str
) -> None:
    # Given an org owner
    owner = signed_up_user(api, outbox, "inviter")
    org = api.post("/api/v1/orgs", token=owner["access_token"], json={"name": "Burst"})
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    invitee = unique_email("invitee")

    # When 30 invitations to one address are sent at once
    answers = burst(
        api,
        30,
        f"/api/v1/orgs/{org_id}/invitations",
        lambda _: {"email": invitee, "role": "member"},
        Authorization=f"Bearer {owner['access_token']}",
    )

    # Then three are sent, the rest refused, and exactly one invitation is pending
    assert statuses(answers) == {201: MAILS_PER_ADDRESS, 429: 30 - MAILS_PER_ADDRESS}
    assert_refusals_are_problems(answers)
    pending = api.get(f"/api/v1/orgs/{org_id}/invitations", token=owner["access_token"]).json()
    assert [i["email"] for i in pending["items"]] == [invitee]
    assert mail_tasks_to(aws, stage, invitee) == MAILS_PER_ADDRESS
    # And only the newest link works: the pending one is the invitation answered last-written
    sent_ids = {r.json()["id"] for r in answers if r.status_code == 201}
    assert pending["items"][0]["id"] in sent_ids


def test_twenty_parallel_wrong_sign_ins_check_five_passwords(api: Api, outbox: Outbox) -> None:
    # Given a real account and an address nobody uses, each guessed at by one source
    owner = signed_up_user(api, outbox, "guessed")
    attacker = new_source()
    wrong = "not the password 1"

    def guesses(email: str) -> list[requests.Response]:
        return burst(
            api,
            20,
            "/api/v1/auth/login",
            lambda _: {"email": email, "password": wrong},
            **{"X-Forwarded-For": attacker},
        )

    real, unknown = guesses(owner["email"]), guesses(unique_email("ghost"))

    # Then at most five passwords were checked for each, the rest refused before a check,
    # and the real and the unknown account answer alike
    for answers in (real, unknown):
        assert statuses(answers) == {401: 5, 429: 15}
        assert_refusals_are_problems(answers)
    assert {r.json()["detail"] for r in real if r.status_code == 401} == {
        r.json()["detail"] for r in unknown if r.status_code == 401
    }

    # And the owner still signs in from their own source, while the attacker's is refused
    mine = api.post(
        "/api/v1/auth/login",
        json={"email": owner["email"], "password": PASSWORD},
        headers={"X-Forwarded-For": new_source()},
    )
    assert mine.status_code == 200, mine.text
    theirs = api.post(
        "/api/v1/auth/login",
        json={"email": owner["email"], "password": PASSWORD},
        headers={"X-Forwarded-For": attacker},
    )
    assert theirs.status_code == 429
