"""Abuse limits through the local gateway under bursts of parallel clients (ADR 24): the mail
routes send at most the allowed mails, concurrent guesses check at most the allowed passwords,
concurrent invitations leave one pending, and the real owner still signs in.

Each test speaks from a source of its own: the local engine takes a request's source IP from
`X-Forwarded-For` (a contract pinned below; on AWS the gateway ignores it), so the per-source
limits of one test do not spend another's."""

from __future__ import annotations

import random
import time
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
GATEWAY_RETRIES = 5
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
    engine's worker processes. A gateway timeout (502: on a busy machine the engine's cold
    starts can pass the function's timeout, issue 10 §3) or the engine's own throttle is
    retried, as a client would: so every request ends with the function's own answer, and a
    request that timed out after spending its unit is answered by its retry (a 429 once the
    allowance is gone)."""

    def post(payload: dict[str, Any]) -> requests.Response:
        for attempt in range(1, GATEWAY_RETRIES + 1):
            answer = requests.post(api.base + path, json=payload, headers=headers, timeout=60)
            if not engine_refused(answer):
                break
            time.sleep(0.5 * attempt)  # a client's backoff before it tries again
        return answer

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        warm = list(pool.map(post, [{"warm": n} for n in range(CLIENTS)]))
        assert {r.status_code for r in warm} == {422}, [r.text for r in warm]
        answers = list(pool.map(post, [body(n) for n in range(count)]))
    assert not [r for r in answers if engine_refused(r)], [r.text for r in answers]
    return answers


def engine_refused(answer: requests.Response) -> bool:
    """A gateway timeout (502), or the engine's own throttle (429 without a problem body: it
    caps concurrent executions to the machine's memory): the function never answered."""
    ours = answer.headers.get("Content-Type") == "application/problem+json"
    return answer.status_code == 502 or (answer.status_code == 429 and not ours)


def accepted_and_refused(answers: list[requests.Response], ok: int, allowed: int) -> int:
    """Asserts at most `allowed` answers are `ok` and the others 429 problems; answers how
    many were `ok`. Exactly `allowed` unless a request timed out after spending its unit."""
    counted = statuses(answers)
    assert set(counted) <= {ok, 429}, [r.text for r in answers]
    assert 1 <= counted[ok] <= allowed, counted
    assert_refusals_are_problems(answers)
    return counted[ok]


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

    # Then at most three are accepted, the rest refused as problems, and as many mails go out
    sent = accepted_and_refused(answers, 202, MAILS_PER_ADDRESS)
    # (A request that timed out after queueing its mail was answered 429 by its retry.)
    assert 1 + sent <= mail_tasks_to(aws, stage, user["email"]) <= 1 + MAILS_PER_ADDRESS
    outbox.wait_for(user["email"], "Reset", count=sent)


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
    accepted_and_refused(answers, 202, MAILS_PER_ADDRESS)


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

    # Then at most three more verification mails go out, besides the first
    sent = accepted_and_refused(answers, 202, MAILS_PER_ADDRESS)
    assert 1 + sent <= mail_tasks_to(aws, stage, email) <= 1 + MAILS_PER_ADDRESS
    outbox.wait_for(email, "Confirm", count=1 + sent)


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

    # Then at most three are sent, the rest refused, and exactly one invitation is pending
    sent = accepted_and_refused(answers, 201, MAILS_PER_ADDRESS)
    pending = api.get(f"/api/v1/orgs/{org_id}/invitations", token=owner["access_token"]).json()
    assert [i["email"] for i in pending["items"]] == [invitee]
    assert sent <= mail_tasks_to(aws, stage, invitee) <= MAILS_PER_ADDRESS


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
        accepted_and_refused(answers, 401, GUESSES_PER_ACCOUNT_AND_SOURCE)
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
