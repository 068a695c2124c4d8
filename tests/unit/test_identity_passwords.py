"""POST /api/v1/auth/password/forgot and /reset, GET and PATCH /api/v1/users/me."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from kumo.core import clock
from kumo.identity import service
from kumo.identity.models import UserModel, user_key
from kumo.tasks.models import EmailTaskModel, task_key

from tests.support.factories import PASSWORD, principal_for, unique_email, verified_user
from tests.unit.conftest import QUEUE_URL

pytestmark = pytest.mark.usefixtures("aws")

NEW_PASSWORD = "battery staple 7"
FORGOT = ("identity/password_forgot", "POST", "/api/v1/auth/password/forgot")
RESET = ("identity/password_reset", "POST", "/api/v1/auth/password/reset")
LOGIN = ("identity/login", "POST", "/api/v1/auth/login")
REFRESH = ("identity/refresh", "POST", "/api/v1/auth/refresh")
GET_ME = ("identity/get_me", "GET", "/api/v1/users/me")
UPDATE_ME = ("identity/update_me", "PATCH", "/api/v1/users/me")


def queued_tasks() -> list[EmailTaskModel]:
    messages = (
        boto3.client("sqs")
        .receive_message(QueueUrl=QUEUE_URL, MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return [
        EmailTaskModel.get(task_key(json.loads(m["Body"])["task_id"]), "TASK") for m in messages
    ]


def reset_token_for(call_api: Any, email: str) -> str:
    call_api(*FORGOT, body={"email": email})
    (task,) = queued_tasks()
    return str(task.params["token"])


def login(call_api: Any, email: str, password: str) -> dict[str, Any]:
    return call_api(*LOGIN, body={"email": email, "password": password})


def password_hash(user_id: str) -> str:
    return str(UserModel.get(user_key(user_id), "PROFILE").password_hash)


# --- forgot / reset -----------------------------------------------------------------------


def test_password_forgot_unknown_email_is_accepted_without_mail(call_api):
    # Given an address no account uses
    email = unique_email("nobody")

    # When asking for a reset
    response = call_api(*FORGOT, body={"email": email})

    # Then the answer looks like success but nothing is queued
    assert response["statusCode"] == 202
    assert response["json"]["status"] == "accepted"
    assert queued_tasks() == []


def test_password_forgot_known_email_queues_reset_mail(call_api):
    # Given a verified account
    email = unique_email("forgot")
    verified_user(email)

    # When asking for a reset with the address in capitals
    response = call_api(*FORGOT, body={"email": email.upper()})

    # Then the same answer comes back and a reset mail task is queued for the account
    assert response["statusCode"] == 202
    (task,) = queued_tasks()
    assert (task.template, task.recipient) == ("password_reset", email)
    assert task.params["link"] == (
        f"https://app.kumo.test/auth/reset-password?token={task.params['token']}"
    )


def test_password_reset_sets_new_password(call_api):
    # Given a reset token
    email = unique_email("reset")
    verified_user(email)
    token = reset_token_for(call_api, email)

    # When resetting with it
    response = call_api(*RESET, body={"token": token, "new_password": NEW_PASSWORD})

    # Then the new password signs in and the old one does not
    assert response["statusCode"] == 204
    assert login(call_api, email, NEW_PASSWORD)["statusCode"] == 200
    assert login(call_api, email, PASSWORD)["statusCode"] == 401


def test_password_reset_revokes_existing_sessions(call_api):
    # Given a session opened before the reset
    email = unique_email("reset-sessions")
    verified_user(email)
    refresh_token = login(call_api, email, PASSWORD)["json"]["refresh_token"]
    token = reset_token_for(call_api, email)

    # When the password is reset
    call_api(*RESET, body={"token": token, "new_password": NEW_PASSWORD})

    # Then the old session can no longer refresh
    assert call_api(*REFRESH, body={"refresh_token": refresh_token})["statusCode"] == 401


def test_password_reset_token_is_single_use(call_api):
    # Given a reset token that was already spent
    email = unique_email("reset-once")
    verified_user(email)
    token = reset_token_for(call_api, email)
    call_api(*RESET, body={"token": token, "new_password": NEW_PASSWORD})

    # When spending it again
    response = call_api(*RESET, body={"token": token, "new_password": "another secret 99"})

    # Then it is an invalid-token problem and the first new password still holds
    assert response["statusCode"] == 400
    assert response["json"]["type"] == "urn:kumo:problem:invalid-token"
    assert login(call_api, email, NEW_PASSWORD)["statusCode"] == 200


def test_password_reset_refuses_expired_token(call_api, monkeypatch):
    # Given a reset token and a clock moved past its hour
    email = unique_email("reset-expired")
    verified_user(email)
    token = reset_token_for(call_api, email)
    later = clock.now() + service.RESET_TOKEN_SECONDS + 1
    monkeypatch.setattr(clock, "now", lambda: later)

    # When resetting with it
    response = call_api(*RESET, body={"token": token, "new_password": NEW_PASSWORD})

    # Then it is refused
    assert response["statusCode"] == 400
    assert response["json"]["type"] == "urn:kumo:problem:invalid-token"


def test_password_reset_refuses_weak_password_and_changes_nothing(call_api):
    # Given a reset token
    email = unique_email("reset-weak")
    user_id = verified_user(email)
    before = password_hash(user_id)
    token = reset_token_for(call_api, email)

    # When resetting to a password without a digit
    response = call_api(*RESET, body={"token": token, "new_password": "only letters here"})

    # Then the policy refuses it on new_password and the stored password is unchanged
    assert response["statusCode"] == 422
    assert [e["field"] for e in response["json"]["errors"]] == ["new_password"]
    assert password_hash(user_id) == before


def test_password_reset_weak_password_leaves_token_usable(call_api):
    # Given a reset attempt refused for a weak password
    email = unique_email("reset-retry")
    verified_user(email)
    token = reset_token_for(call_api, email)
    call_api(*RESET, body={"token": token, "new_password": "only letters here"})

    # When retrying with the same token and a good password
    response = call_api(*RESET, body={"token": token, "new_password": NEW_PASSWORD})

    # Then the reset goes through
    assert response["statusCode"] == 204
    assert login(call_api, email, NEW_PASSWORD)["statusCode"] == 200


# --- users/me -----------------------------------------------------------------------------


def test_get_me_answers_callers_profile(call_api):
    # Given a signed-in user
    email = unique_email("me")
    user_id = verified_user(email)

    # When reading their profile
    response = call_api(*GET_ME, principal=principal_for(user_id, email=email))

    # Then it is theirs
    assert response["statusCode"] == 200
    assert (response["json"]["id"], response["json"]["email"]) == (user_id, email)


def test_update_me_changes_display_name(call_api):
    # Given a signed-in user
    email = unique_email("rename")
    user_id = verified_user(email)

    # When changing the display name (with spaces around it)
    response = call_api(
        *UPDATE_ME, body={"display_name": "  Grace  "}, principal=principal_for(user_id)
    )

    # Then the trimmed name is stored and answered
    assert response["statusCode"] == 200
    assert response["json"]["display_name"] == "Grace"
    assert UserModel.get(user_key(user_id), "PROFILE").display_name == "Grace"


def test_update_me_changes_password_with_current_password(call_api):
    # Given a signed-in user
    email = unique_email("change")
    user_id = verified_user(email)

    # When changing the password with the right current one
    response = call_api(
        *UPDATE_ME,
        body={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        principal=principal_for(user_id),
    )

    # Then the new password signs in
    assert response["statusCode"] == 200
    assert login(call_api, email, NEW_PASSWORD)["statusCode"] == 200


def test_update_me_refuses_password_change_with_wrong_current_password(call_api):
    # Given a signed-in user
    email = unique_email("change-wrong")
    user_id = verified_user(email)
    before = password_hash(user_id)

    # When changing the password with a wrong current one
    response = call_api(
        *UPDATE_ME,
        body={"current_password": "not the password 1", "new_password": NEW_PASSWORD},
        principal=principal_for(user_id),
    )

    # Then it is a 422 on current_password and nothing changed
    assert response["statusCode"] == 422
    assert [e["field"] for e in response["json"]["errors"]] == ["current_password"]
    assert password_hash(user_id) == before


def test_update_me_refuses_password_change_without_current_password(call_api):
    # Given a signed-in user
    email = unique_email("change-missing")
    user_id = verified_user(email)

    # When changing the password without the current one
    response = call_api(
        *UPDATE_ME, body={"new_password": NEW_PASSWORD}, principal=principal_for(user_id)
    )

    # Then it is a 422 on current_password
    assert response["statusCode"] == 422
    assert [e["field"] for e in response["json"]["errors"]] == ["current_password"]


def test_update_me_password_change_revokes_sessions(call_api):
    # Given a session opened before the change
    email = unique_email("change-sessions")
    user_id = verified_user(email)
    refresh_token = login(call_api, email, PASSWORD)["json"]["refresh_token"]

    # When changing the password
    call_api(
        *UPDATE_ME,
        body={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        principal=principal_for(user_id),
    )

    # Then the old session can no longer refresh
    assert call_api(*REFRESH, body={"refresh_token": refresh_token})["statusCode"] == 401
