"""POST /api/v1/media/uploads under moto (kumo.media.uploads, ADR 28): the pre-signed form and
its policy, the pending record, the purpose's types and sizes, roles, the org's quota and its
pending uploads, and the rate limit a refused request does not spend."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import boto3
import pytest
from kumo.core import abuse_limits, clock
from kumo.core.config import get_settings
from kumo.core.rate_limit import Limit
from kumo.media import uploads
from kumo.media.models import (
    MediaModel,
    PendingUploadModel,
    UsageModel,
    media_key,
    org_key,
    pending_sort_key,
)
from kumo.media.purposes import RULES

from tests.support.factories import Fleet, new_fleet, new_principal

pytestmark = pytest.mark.usefixtures("aws", "media_bucket")

PROBLEM = "urn:kumo:problem:"
MB = 1024 * 1024


@pytest.fixture
def media_bucket() -> str:
    """The media bucket, which the moto account does not build."""
    name = get_settings().media_bucket
    assert name == "kumo-test-media-123456789012"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def org() -> Fleet:
    return new_fleet("Acme", devices=0)


def ask(
    call_api: Any,
    principal: dict[str, str],
    org_id: str,
    *,
    purpose: str = "attachment",
    content_type: str = "image/png",
    size: int = 1_000,
    file_name: str = "photo.png",
) -> dict[str, Any]:
    response: dict[str, Any] = call_api(
        "media/request_upload",
        "POST",
        "/api/v1/media/uploads",
        body={
            "org_id": org_id,
            "purpose": purpose,
            "file_name": file_name,
            "content_type": content_type,
            "size": size,
        },
        principal=principal,
    )
    return response


def problem_type(response: dict[str, Any]) -> str:
    return str(response["json"]["type"]).removeprefix(PROBLEM)


def policy_of(fields: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(fields["policy"]))
    return decoded


def instant(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def set_usage(org_id: str, used: int) -> None:
    UsageModel(org_key(org_id), org_id=org_id, bytes=used, objects=1).save()


# --- the form -----------------------------------------------------------------------------


def test_a_member_gets_a_form_for_the_exact_key_and_type(call_api, org, media_bucket):
    # Given a member of the org
    member = org.member("member")

    # When they ask for a form for a 1,234-byte PNG attachment
    response = ask(
        call_api, member, org.org_id, content_type="Image/PNG", size=1_234, file_name="a b.png"
    )

    # Then the form posts to the media bucket, at quarantine/<org>/<id>, as the declared type
    assert response["statusCode"] == 201, response
    media, upload = response["json"]["media"], response["json"]["upload"]
    key = f"quarantine/{org.org_id}/{media['id']}"
    assert media_bucket in upload["url"]
    assert upload["fields"]["key"] == key
    assert upload["fields"]["Content-Type"] == "image/png"
    assert upload["max_bytes"] == 1_234
    assert (media["state"], media["purpose"], media["links"]) == ("pending", "attachment", None)
    assert (media["declared_type"], media["declared_size"]) == ("image/png", 1_234)
    assert (media["file_name"], media["uploaded_by"]) == ("a b.png", member["subject_id"])


def test_the_policy_holds_the_key_the_type_and_the_size(call_api, org, media_bucket):
    # When the owner asks for a form
    response = ask(call_api, org.owner, org.org_id, content_type="application/pdf", size=4_321)
    assert response["statusCode"] == 201, response
    upload = response["json"]["upload"]

    # Then its policy allows 1 to 4,321 bytes, that key and that type only, in that bucket
    policy = policy_of(upload["fields"])
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 4_321] in conditions
    assert {"key": upload["fields"]["key"]} in conditions
    assert {"Content-Type": "application/pdf"} in conditions
    assert {"bucket": media_bucket} in conditions
    assert abs(instant(policy["expiration"]) - instant(upload["expires_at"])) <= 2
    # No condition lets any other key or type in
    assert not [c for c in conditions if isinstance(c, list) and c[0] == "starts-with"]


def test_the_form_stores_a_pending_record_and_a_pending_upload(call_api, org):
    # When the owner asks for a form
    before = clock.now()
    response = ask(call_api, org.owner, org.org_id, size=2_000)
    media_id = response["json"]["media"]["id"]

    # Then the record is pending with the form's deadline, and the org counts the upload
    media = MediaModel.get(media_key(media_id), "META", consistent_read=True)
    assert (media.state, media.org_id, media.declared_size) == ("pending", org.org_id, 2_000)
    assert int(before) + uploads.FORM_SECONDS <= media.upload_deadline <= clock.now() + 900
    assert media.expires_at == media.upload_deadline + uploads.PENDING_KEEP_SECONDS
    pending = PendingUploadModel.get(org_key(org.org_id), pending_sort_key(media_id))
    assert (pending.declared_size, pending.upload_deadline) == (2_000, media.upload_deadline)


# --- what the purpose allows ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose", "content_type"),
    [
        ("avatar", "application/pdf"),
        ("document", "image/png"),
        ("attachment", "image/svg+xml"),
        ("attachment", "text/html"),
    ],
)
def test_a_type_outside_the_purpose_is_422(call_api, org, purpose, content_type):
    response = ask(call_api, org.owner, org.org_id, purpose=purpose, content_type=content_type)

    assert response["statusCode"] == 422, response
    assert [e["field"] for e in response["json"]["errors"]] == ["content_type"]


def test_a_size_over_the_purposes_limit_is_422(call_api, org):
    # Given an avatar one byte over its limit
    limit = RULES["avatar"].max_bytes

    # When / Then it is refused on `size`, and at the limit it is not
    over = ask(call_api, org.owner, org.org_id, purpose="avatar", size=limit + 1)
    assert over["statusCode"] == 422, over
    assert [e["field"] for e in over["json"]["errors"]] == ["size"]
    assert ask(call_api, org.owner, org.org_id, purpose="avatar", size=limit)["statusCode"] == 201


# --- who may ask ------------------------------------------------------------------------------


def test_a_viewer_may_ask_for_an_avatar_but_not_an_attachment(call_api, org):
    viewer = org.member("viewer")

    refused = ask(call_api, viewer, org.org_id, purpose="attachment")
    assert refused["statusCode"] == 403, refused
    assert ask(call_api, viewer, org.org_id, purpose="avatar")["statusCode"] == 201


def test_a_non_member_gets_404(call_api, org):
    response = ask(call_api, new_principal("stranger"), org.org_id, purpose="avatar")

    assert response["statusCode"] == 404, response
    assert not list(MediaModel.by_org.query(org_key(org.org_id)))


# --- room in the org ------------------------------------------------------------------------


def test_stored_bytes_and_pending_uploads_count_against_the_quota(call_api, org):
    # Given an org 5 MB short of its quota with a 3 MB upload in progress
    quota = get_settings().media_bytes_per_org
    set_usage(org.org_id, quota - 5 * MB)
    assert ask(call_api, org.owner, org.org_id, size=3 * MB)["statusCode"] == 201

    # When 3 MB more are asked for
    response = ask(call_api, org.owner, org.org_id, size=3 * MB)

    # Then the quota is reached, and the problem says by what
    assert response["statusCode"] == 409, response
    body = response["json"]
    assert problem_type(response) == "storage-quota-reached"
    assert (body["quota_bytes"], body["used_bytes"], body["pending_bytes"]) == (
        quota,
        quota - 5 * MB,
        3 * MB,
    )
    # And what fits exactly still gets its form
    assert ask(call_api, org.owner, org.org_id, size=2 * MB)["statusCode"] == 201


def test_an_expired_pending_upload_no_longer_counts(call_api, org, monkeypatch):
    # Given a 3 MB upload whose form expired longer ago than the judging slack
    quota = get_settings().media_bytes_per_org
    set_usage(org.org_id, quota - 5 * MB)
    real_now = clock.now
    then = real_now() - uploads.FORM_SECONDS - uploads.JUDGING_SLACK_SECONDS - 1
    monkeypatch.setattr(clock, "now", lambda: then)
    assert ask(call_api, org.owner, org.org_id, size=3 * MB)["statusCode"] == 201
    monkeypatch.setattr(clock, "now", real_now)

    # When 3 MB more are asked for now
    response = ask(call_api, org.owner, org.org_id, size=3 * MB)

    # Then they fit: the abandoned upload reserves nothing
    assert response["statusCode"] == 201, response


def test_an_upload_within_the_slack_still_counts(call_api, org, monkeypatch):
    # Given a 3 MB upload whose form expired, but less than the slack ago
    quota = get_settings().media_bytes_per_org
    set_usage(org.org_id, quota - 5 * MB)
    real_now = clock.now
    then = real_now() - uploads.FORM_SECONDS - uploads.JUDGING_SLACK_SECONDS + 60
    monkeypatch.setattr(clock, "now", lambda: then)
    assert ask(call_api, org.owner, org.org_id, size=3 * MB)["statusCode"] == 201
    monkeypatch.setattr(clock, "now", real_now)

    # When / Then it may still arrive, so 3 MB more do not fit
    response = ask(call_api, org.owner, org.org_id, size=3 * MB)
    assert response["statusCode"] == 409, response
    assert response["json"]["pending_bytes"] == 3 * MB


def test_too_many_pending_uploads_is_409(call_api, org):
    # Given an org with as many uploads in progress as it may have
    deadline = int(clock.now()) + uploads.FORM_SECONDS
    with PendingUploadModel.batch_write() as batch:
        for n in range(uploads.MAX_PENDING_PER_ORG):
            media_id = f"{n:026d}"
            batch.save(
                PendingUploadModel(
                    org_key(org.org_id),
                    pending_sort_key(media_id),
                    media_id=media_id,
                    declared_size=1,
                    upload_deadline=deadline,
                    expires_at=deadline + uploads.PENDING_KEEP_SECONDS,
                )
            )

    # When one more is asked for
    response = ask(call_api, org.owner, org.org_id)

    # Then it waits for one of them
    assert response["statusCode"] == 409, response
    assert problem_type(response) == "too-many-pending-uploads"
    assert response["json"]["limit"] == uploads.MAX_PENDING_PER_ORG


# --- the rate limit ---------------------------------------------------------------------------


def test_a_refused_request_does_not_spend_the_rate_limit(call_api, org, monkeypatch):
    # Given a user allowed one form an hour, in an org with no room for 3 MB
    monkeypatch.setattr(
        abuse_limits, "UPLOAD_PER_USER", Limit("upload.user", 1, 3600, "upload forms per user")
    )
    quota = get_settings().media_bytes_per_org
    set_usage(org.org_id, quota - 2 * MB)

    # When the quota and the purpose refuse its requests
    assert ask(call_api, org.owner, org.org_id, size=3 * MB)["statusCode"] == 409
    assert ask(call_api, org.owner, org.org_id, content_type="text/html")["statusCode"] == 422

    # Then the one form of the hour is still there, and only then the limit bites
    assert ask(call_api, org.owner, org.org_id, size=1 * MB)["statusCode"] == 201
    limited = ask(call_api, org.owner, org.org_id, size=1)
    assert limited["statusCode"] == 429, limited
    assert problem_type(limited) == "rate-limited"
    assert int(limited["multiValueHeaders"]["Retry-After"][0]) >= 1
