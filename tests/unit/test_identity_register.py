"""POST /api/v1/auth/register and /api/v1/auth/verify-email."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
from kumo.core import clock
from kumo.identity import service
from kumo.identity.models import EmailClaimModel, UserModel, email_key, user_key
from kumo.tasks.models import EmailTaskModel, task_key

from tests.support.factories import PASSWORD, unique_email
from tests.unit.conftest import QUEUE_URL

pytestmark = pytest.mark.usefixtures("aws")

REGISTER = ("identity/register", "POST", "/api/v1/auth/register")
VERIFY = ("identity/verify_email", "POST", "/api/v1/auth/verify-email")
LOGIN = ("identity/login", "POST", "/api/v1/auth/login")
RESEND = ("identity/resend_verification", "POST", "/api/v1/auth/verify-email/resend")


def queued_task_ids() -> list[str]:
    messages = (
        boto3.client("sqs")
        .receive_message(QueueUrl=QUEUE_URL, MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return [json.loads(m["Body"])["task_id"] for m in messages]


def only_queued_task() -> EmailTaskModel:
    (task_id,) = queued_task_ids()
    return EmailTaskModel.get(task_key(task_id), "TASK")


def register_body(email: str, **overrides: Any) -> dict[str, Any]:
    return {"email": email, "password": PASSWORD, "display_name": "Ada", **overrides}


def test_register_normalises_email(call_api):
    # Given an address with surrounding spaces and capitals
    local = f"ada-{uuid.uuid4().hex[:12]}"
    raw = f"  {local.upper()}@Example.COM "

    # When registering with it
    response = call_api(*REGISTER, body=register_body(raw))

    # Then the account and its uniqueness claim use the trimmed, lower-cased address
    assert response["statusCode"] == 201
    assert response["json"]["email"] == f"{local}@example.com"
    assert (
        EmailClaimModel.get(email_key(f"{local}@example.com"), "EMAIL").user_id
        == (response["json"]["id"])
    )


def test_register_answers_the_new_unverified_user(call_api):
    # Given a fresh address
    email = unique_email()

    # When registering
    response = call_api(*REGISTER, body=register_body(email))

    # Then the answer is the profile, unverified, with the default role and no secrets
    assert response["statusCode"] == 201
    body = response["json"]
    assert set(body) == {
        "id",
        "email",
        "display_name",
        "role",
        "active",
        "email_verified",
        "created_at",
        "avatar_media_id",
    }
    assert (body["email"], body["role"], body["active"], body["email_verified"]) == (
        email,
        "user",
        True,
        False,
    )


def test_register_refuses_duplicate_email_in_any_case(call_api):
    # Given an account for an address
    email = unique_email("dup")
    assert call_api(*REGISTER, body=register_body(email))["statusCode"] == 201

    # When registering the same address in capitals
    response = call_api(*REGISTER, body=register_body(email.upper()))

    # Then the conflict is a problem+json 409
    assert response["statusCode"] == 409
    assert response["multiValueHeaders"]["Content-Type"] == ["application/problem+json"]
    assert response["json"]["type"] == "urn:kumo:problem:conflict"


@pytest.mark.parametrize(
    "password",
    ["short 1", "no digits at all here", "1234567890123", "x1" * 65],
    ids=["too-short", "no-digit", "no-letter", "too-long"],
)
def test_register_refuses_password_outside_policy(call_api, password):
    # Given a password that breaks the policy
    email = unique_email("weak")

    # When registering with it
    response = call_api(*REGISTER, body=register_body(email, password=password))

    # Then the 422 points at the password field and no account exists
    assert response["statusCode"] == 422
    assert response["multiValueHeaders"]["Content-Type"] == ["application/problem+json"]
    assert {e["field"] for e in response["json"]["errors"]} == {"password"}
    assert service.find_user_by_email(email) is None


def test_register_refuses_password_containing_email(call_api):
    # Given a password built from the address's local part
    local = f"grace{uuid.uuid4().hex[:6]}"
    email = f"{local}@example.com"

    # When registering with it
    response = call_api(*REGISTER, body=register_body(email, password=f"{local}2024x"))

    # Then the policy refuses it on the password field
    assert response["statusCode"] == 422
    assert [e["field"] for e in response["json"]["errors"]] == ["password"]


def test_register_refuses_unknown_fields(call_api):
    # Given a body with a field the API does not know (here: trying to pick a role)
    email = unique_email("extra")

    # When registering
    response = call_api(*REGISTER, body=register_body(email, role="admin"))

    # Then it is a validation problem naming the field, and nothing is created
    assert response["statusCode"] == 422
    assert "role" in {e["field"] for e in response["json"]["errors"]}
    assert service.find_user_by_email(email) is None


def test_register_queues_verification_email_task(call_api):
    # Given a fresh address
    email = unique_email("queued")

    # When registering
    call_api(*REGISTER, body=register_body(email))

    # Then one task id is on the queue and the task holds the verification mail
    task = only_queued_task()
    assert (task.template, task.recipient, task.status) == ("verify_email", email, "queued")
    assert task.params["link"] == (
        f"https://app.kumo.test/auth/verify-email?token={task.params['token']}"
    )


def test_verify_email_accepts_token_from_queued_task(call_api):
    # Given a registration and the token its mail carries
    email = unique_email("verify")
    user_id = call_api(*REGISTER, body=register_body(email))["json"]["id"]
    token = only_queued_task().params["token"]

    # When verifying with it
    response = call_api(*VERIFY, body={"token": token})

    # Then the account is verified
    assert response["statusCode"] == 200
    assert response["json"]["email_verified"] is True
    assert UserModel.get(user_key(user_id), "PROFILE").email_verified is True


def test_verify_email_refuses_token_second_use(call_api):
    # Given a verification token that was already spent
    email = unique_email("reuse")
    call_api(*REGISTER, body=register_body(email))
    token = only_queued_task().params["token"]
    assert call_api(*VERIFY, body={"token": token})["statusCode"] == 200

    # When spending it again
    response = call_api(*VERIFY, body={"token": token})

    # Then it is an invalid-token problem
    assert response["statusCode"] == 400
    assert response["json"]["type"] == "urn:kumo:problem:invalid-token"


def test_verify_email_refuses_expired_token(call_api, monkeypatch):
    # Given a verification token and a clock moved past its 24 hours
    email = unique_email("expired")
    user_id = call_api(*REGISTER, body=register_body(email))["json"]["id"]
    token = only_queued_task().params["token"]
    later = clock.now() + service.VERIFY_TOKEN_SECONDS + 1
    monkeypatch.setattr(clock, "now", lambda: later)

    # When verifying with it
    response = call_api(*VERIFY, body={"token": token})

    # Then it is refused and the account stays unverified
    assert response["statusCode"] == 400
    assert response["json"]["type"] == "urn:kumo:problem:invalid-token"
    assert UserModel.get(user_key(user_id), "PROFILE").email_verified is False


def test_login_refuses_unverified_user(call_api):
    # Given an account whose address was never confirmed
    email = unique_email("unverified")
    call_api(*REGISTER, body=register_body(email))

    # When signing in with the right password
    response = call_api(*LOGIN, body={"email": email, "password": PASSWORD})

    # Then it is forbidden until the address is confirmed
    assert response["statusCode"] == 403
    assert response["json"]["type"] == "urn:kumo:problem:email-not-verified"


def test_resend_verification_queues_new_token(call_api):
    # Given a registration whose first mail was read
    email = unique_email("resend")
    call_api(*REGISTER, body=register_body(email))
    first = only_queued_task().params["token"]

    # When asking for the mail again
    response = call_api(*RESEND, body={"email": email})

    # Then a second verification mail with a new, working token is queued
    assert response["statusCode"] == 202
    task = only_queued_task()
    assert task.template == "verify_email"
    assert task.params["token"] != first
    assert call_api(*VERIFY, body={"token": task.params["token"]})["statusCode"] == 200


def test_resend_verification_for_verified_account_queues_nothing(call_api):
    # Given an account that is already verified
    email = unique_email("resend-verified")
    service.register(email=email, password=PASSWORD, display_name="Ada", verified=True)

    # When asking for a verification mail
    response = call_api(*RESEND, body={"email": email})

    # Then the answer is the same as for anyone, and nothing is queued
    assert response["statusCode"] == 202
    assert queued_task_ids() == []
