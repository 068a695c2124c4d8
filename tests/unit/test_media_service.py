"""Files after their upload under moto (kumo.media.service, ADR 28): GET, list, usage and
DELETE through their functions (links only for ready files no other context holds, newest
first with a cursor, who may delete, usage given back), and what other contexts call:
require_ready, hold and links_for."""

from __future__ import annotations

import io
import json
import time
import uuid
from dataclasses import replace
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from kumo.core.config import get_settings
from kumo.core.errors import NotFound, ValidationFailed
from kumo.core.ids import new_id
from kumo.media import service, uploads, validator
from kumo.media.schemas import CreateUploadRequest
from kumo.media.storage import find, stored_bytes
from PIL import Image

from tests.support.factories import Fleet, new_fleet, new_principal

pytestmark = pytest.mark.usefixtures("aws", "media_bucket")

PROBLEM = "urn:kumo:problem:"


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def org() -> Fleet:
    return new_fleet("Acme", devices=0)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (240, 200, 10)).save(out, "PNG")
    return out.getvalue()


def pending(org: Fleet, user: dict[str, str] | None = None, *, purpose: str = "avatar") -> str:
    """A form asked for (by the org's owner unless `user` is given); answers the media id."""
    request: Any = CreateUploadRequest(
        org_id=org.org_id,
        purpose=purpose,
        file_name="face.png",
        content_type="image/png",
        size=10_000,
    )
    user_id = (user or org.owner)["subject_id"]
    media, _ = uploads.request_upload(user_id=user_id, request=request)
    return media.media_id


def ready(org: Fleet, user: dict[str, str] | None = None, *, purpose: str = "avatar") -> str:
    """A PNG uploaded with its form and judged by the validator; answers the media id."""
    media_id = pending(org, user, purpose=purpose)
    key = f"quarantine/{org.org_id}/{media_id}"
    boto3.client("s3").put_object(Bucket=get_settings().media_bucket, Key=key, Body=png())
    body = {
        "Records": [{"eventName": "ObjectCreated:Post", "s3": {"object": {"key": quote_plus(key)}}}]
    }
    validator.handle({"messageId": str(uuid.uuid4()), "body": json.dumps(body)})
    media = find(media_id)
    assert media is not None and media.state == "ready"
    return media_id


def objects(prefix: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=get_settings().media_bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def get(call_api: Any, media_id: str, principal: dict[str, str]) -> dict[str, Any]:
    response: dict[str, Any] = call_api(
        "media/get_media",
        "GET",
        f"/api/v1/media/{media_id}",
        resource="/api/v1/media/{media_id}",
        path_parameters={"media_id": media_id},
        principal=principal,
    )
    return response


def listing(call_api: Any, principal: dict[str, str], **query: str) -> dict[str, Any]:
    response: dict[str, Any] = call_api(
        "media/list_media", "GET", "/api/v1/media", query=query, principal=principal
    )
    return response


def delete(call_api: Any, media_id: str, principal: dict[str, str]) -> dict[str, Any]:
    response: dict[str, Any] = call_api(
        "media/delete_media",
        "DELETE",
        f"/api/v1/media/{media_id}",
        resource="/api/v1/media/{media_id}",
        path_parameters={"media_id": media_id},
        principal=principal,
    )
    return response


def field_of(error: ValidationFailed) -> str:
    return str(error.extra["errors"][0]["field"])


# --- GET /media/{id} --------------------------------------------------------------------------


def test_a_ready_file_comes_with_links_to_its_original_and_thumbnails(call_api, org):
    # Given a ready avatar
    media_id = ready(org)

    # When a viewer of the org reads it
    response = get(call_api, media_id, org.member("viewer"))

    # Then it is answered with pre-signed links to what is stored under media/
    assert response["statusCode"] == 200, response
    body = response["json"]
    assert (body["state"], body["content_type"], body["thumbnails"]) == (
        "ready",
        "image/png",
        [128, 512],
    )
    assert (body["width"], body["height"]) == (32, 24)
    links = body["links"]
    media = find(media_id)
    assert media is not None and media.object_prefix
    assert f"{media.object_prefix}original" in links["original"]
    assert set(links["thumbnails"]) == {"128", "512"}
    assert f"{media.object_prefix}512.webp" in links["thumbnails"]["512"]
    assert "X-Amz-Signature=" in links["original"]


def test_a_pending_file_has_no_links(call_api, org):
    media_id = pending(org)

    response = get(call_api, media_id, org.owner)

    assert response["statusCode"] == 200, response
    assert (response["json"]["state"], response["json"]["links"]) == ("pending", None)


def test_a_held_file_gets_no_links_from_medias_own_route(call_api, org):
    # Given a ready attachment a chat message holds
    media_id = ready(org, purpose="attachment")
    ref = service.require_ready(media_id, org_id=org.org_id, purpose="attachment", field="f")
    service.hold(ref, "chat:message:m1", field="attachments.0")

    # When a member reads it / Then it says who holds it, with no links
    response = get(call_api, media_id, org.owner)
    assert response["statusCode"] == 200, response
    assert (response["json"]["held_by"], response["json"]["links"]) == ("chat:message:m1", None)


@pytest.mark.parametrize("media_id", ["nope", "0" * 26], ids=["not-an-id", "unknown"])
def test_an_unknown_file_is_404(call_api, org, media_id):
    assert get(call_api, media_id, org.owner)["statusCode"] == 404


def test_a_file_of_another_org_is_404_like_a_missing_one(call_api, org):
    media_id = ready(org)

    response = get(call_api, media_id, new_fleet("Other", devices=0).owner)

    assert response["statusCode"] == 404, response
    assert response["json"]["detail"] == service.NO_MEDIA


# --- GET /media -------------------------------------------------------------------------------


def test_the_list_is_newest_first_one_page_at_a_time(call_api, org):
    # Given three files, made in that order
    made = []
    for _ in range(3):
        made.append(pending(org))
        time.sleep(0.002)  # ids are ordered by the millisecond

    # When they are listed one at a time, following the cursor
    pages: list[list[str]] = []
    cursor = None
    while len(pages) < 5:
        query = {"org_id": org.org_id, "limit": "1"} | ({"cursor": cursor} if cursor else {})
        response = listing(call_api, org.owner, **query)
        assert response["statusCode"] == 200, response
        pages.append([item["id"] for item in response["json"]["items"]])
        cursor = response["json"]["next_cursor"]
        if cursor is None:
            break

    # Then they come newest first, one a page, each once, and the cursor ends
    assert [page for page in pages if page] == [[made[2]], [made[1]], [made[0]]]
    assert cursor is None


def test_the_list_filters_by_purpose(call_api, org):
    # Given an avatar and two attachments
    avatar = ready(org)
    attachments = [pending(org, purpose="attachment") for _ in range(2)]

    # When / Then each purpose lists its own, and no filter lists all
    listed = listing(call_api, org.owner, org_id=org.org_id, purpose="attachment")
    assert sorted(i["id"] for i in listed["json"]["items"]) == sorted(attachments)
    avatars = listing(call_api, org.owner, org_id=org.org_id, purpose="avatar")["json"]["items"]
    assert [i["id"] for i in avatars] == [avatar] and avatars[0]["links"]
    everything = listing(call_api, org.owner, org_id=org.org_id)["json"]["items"]
    assert len(everything) == 3


def test_a_cursor_of_one_list_is_refused_by_another(call_api, org):
    pending(org, purpose="attachment")
    pending(org, purpose="attachment")
    first = listing(call_api, org.owner, org_id=org.org_id, limit="1")
    cursor = first["json"]["next_cursor"]

    response = listing(call_api, org.owner, org_id=org.org_id, purpose="attachment", cursor=cursor)

    assert response["statusCode"] == 400, response


def test_the_list_of_an_org_one_is_not_in_is_404(call_api, org):
    pending(org)

    response = listing(call_api, new_principal("stranger"), org_id=org.org_id)

    assert response["statusCode"] == 404, response


# --- GET /media/usage -------------------------------------------------------------------------


def test_usage_counts_what_ready_files_store(call_api, org):
    media_id = ready(org)
    pending(org)

    response = call_api(
        "media/media_usage",
        "GET",
        "/api/v1/media/usage",
        query={"org_id": org.org_id},
        principal=org.member("viewer"),
    )

    assert response["statusCode"] == 200, response
    media = find(media_id)
    assert media is not None
    assert response["json"] == {
        "org_id": org.org_id,
        "bytes": media.stored_bytes,
        "objects": 3,
        "quota_bytes": get_settings().media_bytes_per_org,
    }


# --- DELETE /media/{id} -----------------------------------------------------------------------


def test_the_uploader_deletes_a_ready_file_its_objects_and_its_usage(call_api, org):
    # Given a ready avatar uploaded by a viewer
    viewer = org.member("viewer")
    media_id = ready(org, viewer)
    assert stored_bytes(org.org_id)[1] == 3

    # When they delete it
    response = delete(call_api, media_id, viewer)

    # Then it is gone, with its objects, and the org stores nothing any more
    assert response["statusCode"] == 204, response
    assert find(media_id) is None
    assert objects("media/") == []
    assert stored_bytes(org.org_id) == (0, 0)
    assert get(call_api, media_id, viewer)["statusCode"] == 404


def test_another_member_may_not_delete_a_file(call_api, org):
    media_id = ready(org, org.member("member"))

    response = delete(call_api, media_id, org.member("member"))

    assert response["statusCode"] == 403, response
    assert find(media_id) is not None and len(objects("media/")) == 3


def test_an_org_admin_deletes_anyones_file(call_api, org):
    media_id = ready(org, org.member("member"))

    response = delete(call_api, media_id, org.member("admin"))

    assert response["statusCode"] == 204, response
    assert find(media_id) is None and objects("media/") == []


def test_a_non_member_deleting_gets_404(call_api, org):
    media_id = ready(org)

    response = delete(call_api, media_id, new_principal("stranger"))

    assert response["statusCode"] == 404, response
    assert find(media_id) is not None


def test_deleting_a_pending_upload_frees_its_room(call_api, org):
    # Given a pending upload
    media_id = pending(org)
    assert uploads._pending(org.org_id, time.time())

    # When its uploader deletes it / Then it no longer counts against the org
    assert delete(call_api, media_id, org.owner)["statusCode"] == 204
    assert find(media_id) is None
    assert uploads._pending(org.org_id, time.time()) == []


# --- for other contexts -----------------------------------------------------------------------


def test_require_ready_answers_a_ref_for_a_ready_file(org):
    media_id = ready(org, purpose="attachment")

    ref = service.require_ready(
        media_id,
        org_id=org.org_id,
        purpose="attachment",
        field="attachments.0",
        uploaded_by=org.owner_id,
    )

    assert isinstance(ref, service.MediaRef)
    assert (ref.media_id, ref.org_id, ref.purpose) == (media_id, org.org_id, "attachment")
    assert (ref.content_type, ref.width, ref.height, ref.holder) == ("image/png", 32, 24, None)
    assert ref.size > 0


def test_require_ready_refuses_on_the_named_field(org):
    # Given a ready attachment, a pending one and another org
    ready_id = ready(org, purpose="attachment")
    pending_id = pending(org, purpose="attachment")
    other_org = new_fleet("Other", devices=0).org_id

    cases = {
        "missing": (new_id(), {}),
        "pending": (pending_id, {}),
        "wrong purpose": (ready_id, {"purpose": "avatar"}),
        "other org": (ready_id, {"org_id": other_org}),
        "other uploader": (ready_id, {"uploaded_by": new_id()}),
    }
    for case, (media_id, overrides) in cases.items():
        arguments: dict[str, Any] = {"org_id": org.org_id, "purpose": "attachment"} | overrides
        with pytest.raises(ValidationFailed) as raised:
            service.require_ready(media_id, field="attachments.0", **arguments)
        assert raised.value.status == 422, case
        assert field_of(raised.value) == "attachments.0", case
    # And a file of another org reads as missing, not as someone else's
    with pytest.raises(ValidationFailed, match="No such file"):
        service.require_ready(ready_id, org_id=other_org, purpose="attachment", field="f")


def test_hold_first_holder_wins_and_the_same_holder_again_is_a_no_op(org):
    # Given a ready attachment
    media_id = ready(org, purpose="attachment")
    ref = service.require_ready(media_id, org_id=org.org_id, purpose="attachment", field="f")

    # When one message holds it, twice / Then it is held by that message
    service.hold(ref, "chat:message:first", field="attachments.0")
    service.hold(ref, "chat:message:first", field="attachments.0")
    media = find(media_id)
    assert media is not None and media.holder == "chat:message:first"

    # And another message is refused, the first keeping it
    with pytest.raises(ValidationFailed, match="attached to something else") as refused:
        service.hold(ref, "chat:message:second", field="attachments.0")
    assert field_of(refused.value) == "attachments.0"
    media = find(media_id)
    assert media is not None and media.holder == "chat:message:first"


def test_hold_refuses_a_file_that_is_not_ready(org):
    media_id = pending(org, purpose="attachment")
    ref = service.MediaRef(media_id, org.org_id, "attachment", "image/png", 1, None, None, None)

    with pytest.raises(ValidationFailed) as refused:
        service.hold(ref, "chat:message:m1", field="attachments.0")
    assert field_of(refused.value) == "attachments.0"


def test_links_for_gives_pre_signed_links_to_a_held_file(org):
    # Given a ready attachment held by a message
    media_id = ready(org, purpose="attachment")
    ref = service.require_ready(media_id, org_id=org.org_id, purpose="attachment", field="f")
    service.hold(ref, "chat:message:m1", field="attachments.0")

    # When its holder asks for links
    links = service.links_for(ref)

    # Then they are signed GETs of its objects, which answer the stored bytes
    assert isinstance(links.original, str)
    media = find(media_id)
    assert media is not None
    assert f"{media.object_prefix}original" in links.original
    assert "X-Amz-Signature=" in links.original
    assert set(links.thumbnails) == {"128", "512"}
    assert all(isinstance(url, str) and media_id in url for url in links.thumbnails.values())


def test_links_for_a_file_not_ready_or_of_another_org_is_refused(org):
    media_id = ready(org, purpose="attachment")
    ref = service.require_ready(media_id, org_id=org.org_id, purpose="attachment", field="f")
    waiting = pending(org, purpose="attachment")

    with pytest.raises(NotFound):
        service.links_for(replace(ref, org_id=new_fleet("Other", devices=0).org_id))
    with pytest.raises(NotFound):
        service.links_for(replace(ref, media_id=waiting))
