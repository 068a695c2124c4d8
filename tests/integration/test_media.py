"""Media end to end on the local stack (ADR 28): a form from POST /media/uploads, the file
posted straight to S3 with it, the validator's judgement on the S3 event, and the judged file
through its pre-signed links; refusals by the form, the storage endpoint and the validator,
the org quota, deletion, avatars on the user's profile, roles, and another org that sees none
of it."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.integration.conftest import Api, Outbox, signed_up_user

DEADLINE_SECONDS = 30.0
MB = 1024 * 1024
GPS_IFD = 0x8825
ORIENTATION = 0x0112
PROBLEM = "urn:kumo:problem:"

PDF = b"""%PDF-1.4
1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >> endobj
trailer << /Root 1 0 R >>
%%EOF
"""
PDF_WITH_SCRIPT = PDF.replace(
    b"/Pages 2 0 R >>", b"/Pages 2 0 R /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>"
)
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(document.cookie)</script></svg>"
)


@pytest.fixture(scope="module")
def lab(api: Api, outbox: Outbox) -> dict[str, Any]:
    """An org whose owner invited a viewer, who accepted; and a user of another org."""
    owner = signed_up_user(api, outbox, "media-owner")
    viewer = signed_up_user(api, outbox, "media-viewer")
    token = owner["access_token"]
    org_id = _new_org(api, token, "Media Lab")
    invited = api.post(
        f"/api/v1/orgs/{org_id}/invitations",
        token=token,
        json={"email": viewer["email"], "role": "viewer"},
    )
    assert invited.status_code == 201, invited.text
    invitation = Outbox.token(outbox.wait_for(viewer["email"], "invited you"))
    accepted = api.post(
        "/api/v1/invitations/accept", token=viewer["access_token"], json={"token": invitation}
    )
    assert accepted.status_code == 200, accepted.text
    outsider = signed_up_user(api, outbox, "media-stranger")["access_token"]
    return {
        "owner": owner,
        "token": token,
        "org_id": org_id,
        "viewer": viewer["access_token"],
        "outsider": outsider,
        "outsider_org": _new_org(api, outsider, "Elsewhere"),
    }


@pytest.fixture(scope="module")
def s3(aws: Callable[[str], Any]) -> Any:
    return aws("s3")


@pytest.fixture(scope="module")
def bucket(s3: Any, endpoints: dict[str, Any]) -> str:
    """The media stack's bucket: kumo-<stage>-media-<account>."""
    prefix = f"kumo-{endpoints['stage']}-media-"
    (name,) = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(prefix)]
    return str(name)


# --- helpers --------------------------------------------------------------------------------


def _new_org(api: Api, token: str, name: str) -> str:
    created = api.post("/api/v1/orgs", token=token, json={"name": name})
    assert created.status_code == 201, created.text
    org_id: str = created.json()["id"]
    return org_id


def _ask(
    api: Api, token: str, org_id: str, purpose: str, name: str, content_type: str, size: int
) -> requests.Response:
    return api.post(
        "/api/v1/media/uploads",
        token=token,
        json={
            "org_id": org_id,
            "purpose": purpose,
            "file_name": name,
            "content_type": content_type,
            "size": size,
        },
    )


def _post_form(
    form: dict[str, Any], name: str, data: bytes, content_type: str
) -> requests.Response:
    return requests.post(
        form["url"], data=form["fields"], files={"file": (name, data, content_type)}, timeout=30
    )


def _judged(api: Api, token: str, media_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        answer = api.get(f"/api/v1/media/{media_id}", token=token)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if body["state"] != "pending":
            return body
        time.sleep(0.2)
    raise AssertionError(f"file {media_id} still pending after {DEADLINE_SECONDS} s")


def _upload(
    api: Api,
    token: str,
    org_id: str,
    purpose: str,
    name: str,
    data: bytes,
    content_type: str,
) -> dict[str, Any]:
    """Ask a form, post the bytes with it, and wait for the validator's judgement."""
    asked = _ask(api, token, org_id, purpose, name, content_type, len(data))
    assert asked.status_code == 201, asked.text
    media, form = asked.json()["media"], asked.json()["upload"]
    assert media["state"] == "pending" and media["links"] is None
    assert form["fields"]["key"] == f"quarantine/{org_id}/{media['id']}"
    posted = _post_form(form, name, data, content_type)
    assert posted.status_code in (200, 201, 204), posted.text
    return _judged(api, token, media["id"])


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def _eventually_gone(s3: Any, bucket: str, prefix: str) -> None:
    """The validator deletes the quarantine object just after it records its judgement."""
    deadline = time.monotonic() + 10
    while _keys(s3, bucket, prefix) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _keys(s3, bucket, prefix) == [], f"{prefix} is still in the bucket"


def _fetch(url: str) -> requests.Response:
    fetched = requests.get(url, timeout=30)
    assert fetched.status_code == 200, fetched.text
    return fetched


def _usage(api: Api, token: str, org_id: str) -> dict[str, Any]:
    answer = api.get("/api/v1/media/usage", token=token, params={"org_id": org_id})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _listed(api: Api, token: str, org_id: str, **params: str) -> list[str]:
    answer = api.get("/api/v1/media", token=token, params={"org_id": org_id, **params})
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


def _png(width: int, height: int, **info: str) -> bytes:
    picture = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    text = PngInfo()
    for key, value in info.items():
        text.add_text(key, value)
    out = io.BytesIO()
    picture.save(out, format="PNG", pnginfo=text)
    return out.getvalue()


def _photo_with_gps() -> bytes:
    """A 300 x 200 JPEG stored sideways (orientation 6: turn 90° clockwise to show), red on
    its top half and blue below, with a GPS position."""
    picture = Image.new("RGB", (300, 200), (0, 0, 255))
    picture.paste((255, 0, 0), (0, 0, 300, 100))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif.get_ifd(GPS_IFD).update(
        {1: "N", 2: (59.0, 19.0, 48.0), 3: "E", 4: (18.0, 4.0, 6.0), 5: 0, 6: 12.0}
    )
    out = io.BytesIO()
    picture.save(out, format="JPEG", exif=exif, quality=95)
    return out.getvalue()


def _field_errors(answer: requests.Response) -> set[str]:
    return {error["field"] for error in answer.json().get("errors", [])}


# --- tests ----------------------------------------------------------------------------------


def test_png_becomes_ready_with_thumbnails_and_counts_in_usage(
    api: Api, lab: dict[str, Any]
) -> None:
    # Given an org of its own, so its usage is this file's alone
    token = lab["token"]
    org_id = _new_org(api, token, "Pictures")
    data = _png(600, 400, Comment="taken at home")

    # When a PNG is uploaded with the form
    media = _upload(api, token, org_id, "attachment", "chart.png", data, "image/png")

    # Then it is ready, with the size, dimensions and thumbnails of what was stored
    assert media["state"] == "ready", media
    assert (media["content_type"], media["width"], media["height"]) == ("image/png", 600, 400)
    assert media["thumbnails"] == [128, 512]
    links = media["links"]
    assert set(links["thumbnails"]) == {"128", "512"}
    original = _fetch(links["original"])
    assert original.headers["Content-Type"] == "image/png"
    assert original.headers["Content-Disposition"].startswith("inline")
    assert media["size"] == len(original.content)
    assert media["sha256"] == hashlib.sha256(original.content).hexdigest()
    with Image.open(io.BytesIO(original.content)) as stored:
        assert (stored.format, stored.size) == ("PNG", (600, 400))
        assert "Comment" not in stored.info, stored.info
    stored_bytes = len(original.content)
    for size in (128, 512):
        thumbnail = _fetch(links["thumbnails"][str(size)])
        assert thumbnail.headers["Content-Type"] == "image/webp"
        stored_bytes += len(thumbnail.content)
        with Image.open(io.BytesIO(thumbnail.content)) as small:
            assert small.format == "WEBP"
            assert max(small.size) == size, small.size

    # And it is listed with its purpose, not with another
    assert _listed(api, token, org_id) == [media["id"]]
    assert _listed(api, token, org_id, purpose="attachment") == [media["id"]]
    assert _listed(api, token, org_id, purpose="deck") == []

    # And the org's usage counts its three objects
    usage = _usage(api, token, org_id)
    assert (usage["bytes"], usage["objects"]) == (stored_bytes, 3), usage


def test_jpeg_is_served_upright_without_exif_or_gps(api: Api, lab: dict[str, Any]) -> None:
    # Given a sideways photo that says where it was taken
    data = _photo_with_gps()
    with Image.open(io.BytesIO(data)) as sent:
        assert sent.getexif()[ORIENTATION] == 6 and sent.getexif().get_ifd(GPS_IFD)

    # When it is uploaded
    media = _upload(api, lab["token"], lab["org_id"], "deck", "IMG_0001.jpg", data, "image/jpeg")

    # Then the stored picture is upright, and carries no EXIF at all
    assert media["state"] == "ready", media
    assert (media["content_type"], media["width"], media["height"]) == ("image/jpeg", 200, 300)
    original = _fetch(media["links"]["original"])
    assert original.headers["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(original.content)) as stored:
        exif = stored.getexif()
        assert stored.size == (200, 300)
        assert GPS_IFD not in exif and ORIENTATION not in exif, dict(exif)
        assert "exif" not in stored.info
        # Turned clockwise: the red top is now on the right
        pixels = stored.convert("RGB")
        red, blue = pixels.getpixel((150, 150)), pixels.getpixel((50, 150))
        assert isinstance(red, tuple) and isinstance(blue, tuple)
        assert red[0] > 200 and red[2] < 60, red
        assert blue[2] > 200 and blue[0] < 60, blue


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("setup.png", b"MZ\x90\x00\x03\x00\x00\x00" + os.urandom(2048)),
        ("logo.png", SVG),
    ],
    ids=["executable", "svg"],
)
def test_mislabelled_file_is_rejected_and_never_stored(
    api: Api, lab: dict[str, Any], s3: Any, bucket: str, name: str, data: bytes
) -> None:
    # When a file that is no PNG is uploaded as one
    media = _upload(api, lab["token"], lab["org_id"], "attachment", name, data, "image/png")

    # Then it is rejected with a reason, and nothing of it is kept
    assert media["state"] == "rejected", media
    assert media["reason"] and "PNG, JPEG" in media["reason"], media
    assert media["links"] is None and media["content_type"] is None
    assert _keys(s3, bucket, f"media/{lab['org_id']}/{media['id']}/") == []
    _eventually_gone(s3, bucket, f"quarantine/{lab['org_id']}/{media['id']}")


def test_storage_endpoint_and_form_refuse_what_is_too_large_or_not_allowed(
    api: Api, lab: dict[str, Any], s3: Any, bucket: str
) -> None:
    token, org_id = lab["token"], lab["org_id"]
    data = _png(64, 64)

    # When more bytes are posted than the form declared
    asked = _ask(api, token, org_id, "attachment", "small.png", "image/png", len(data) - 1)
    assert asked.status_code == 201, asked.text
    media, form = asked.json()["media"], asked.json()["upload"]
    posted = _post_form(form, "small.png", data, "image/png")

    # Then the storage endpoint refuses them, and the file stays pending with nothing stored
    assert posted.status_code == 400, posted.text
    assert "<Code>EntityTooLarge</Code>" in posted.text, posted.text
    still = api.get(f"/api/v1/media/{media['id']}", token=token)
    assert still.status_code == 200 and still.json()["state"] == "pending", still.text
    assert _keys(s3, bucket, f"quarantine/{org_id}/{media['id']}") == []

    # And no form is given past a purpose's size limit or outside its types
    too_big = _ask(api, token, org_id, "avatar", "me.png", "image/png", 5 * MB + 1)
    assert too_big.status_code == 422, too_big.text
    assert _field_errors(too_big) == {"size"}, too_big.text
    not_a_face = _ask(api, token, org_id, "avatar", "me.pdf", "application/pdf", 1000)
    assert not_a_face.status_code == 422, not_a_face.text
    assert _field_errors(not_a_face) == {"content_type"}, not_a_face.text


def test_another_orgs_user_gets_404_on_every_route(api: Api, lab: dict[str, Any]) -> None:
    # Given a ready file in the lab's org
    token, org_id, outsider = lab["token"], lab["org_id"], lab["outsider"]
    media = _upload(api, token, org_id, "document", "report.pdf", PDF, "application/pdf")
    assert media["state"] == "ready", media

    # When a user of another org asks for it, its org's files, usage, or a form in that org
    answers = [
        api.get(f"/api/v1/media/{media['id']}", token=outsider),
        api.delete(f"/api/v1/media/{media['id']}", token=outsider),
        api.get("/api/v1/media", token=outsider, params={"org_id": org_id}),
        api.get("/api/v1/media/usage", token=outsider, params={"org_id": org_id}),
        _ask(api, outsider, org_id, "attachment", "x.png", "image/png", 100),
    ]

    # Then every answer is a 404, and the file is still there
    assert [a.status_code for a in answers] == [404] * len(answers), [a.text for a in answers]
    assert api.get(f"/api/v1/media/{media['id']}", token=token).json()["state"] == "ready"
    # And their own org lists nothing
    assert _listed(api, outsider, lab["outsider_org"]) == []
    usage = _usage(api, outsider, lab["outsider_org"])
    assert (usage["bytes"], usage["objects"]) == (0, 0)


def test_delete_removes_every_object_and_the_usage(
    api: Api, lab: dict[str, Any], s3: Any, bucket: str
) -> None:
    # Given a ready picture in an org of its own
    token = lab["token"]
    org_id = _new_org(api, token, "Short-lived")
    media = _upload(api, token, org_id, "avatar", "face.png", _png(300, 300), "image/png")
    assert media["state"] == "ready", media
    prefix = f"media/{org_id}/{media['id']}/"
    assert len(_keys(s3, bucket, prefix)) == 3
    assert _usage(api, token, org_id)["objects"] == 3
    links = [media["links"]["original"], *media["links"]["thumbnails"].values()]

    # When its uploader deletes it
    deleted = api.delete(f"/api/v1/media/{media['id']}", token=token)

    # Then its objects, its links and its record are gone, and the usage is back to nothing
    assert deleted.status_code == 204, deleted.text
    assert _keys(s3, bucket, prefix) == []
    # (the engine answers 404 NoSuchKey; AWS answers 403 without s3:ListBucket)
    statuses = [requests.get(link, timeout=30).status_code for link in links]
    assert len(statuses) == 3 and set(statuses) <= {403, 404}, statuses
    gone = api.get(f"/api/v1/media/{media['id']}", token=token)
    assert gone.status_code == 404, gone.text
    assert _listed(api, token, org_id) == []
    usage = _usage(api, token, org_id)
    assert (usage["bytes"], usage["objects"]) == (0, 0), usage


def test_forms_past_the_org_quota_are_refused(api: Api, lab: dict[str, Any]) -> None:
    # Given a fresh org with the default quota
    token = lab["token"]
    org_id = _new_org(api, token, "Archive")
    quota = _usage(api, token, org_id)["quota_bytes"]
    assert quota == 1024**3
    size = 50 * MB

    # When forms for 20 documents of 50 MiB are asked for, then a 21st
    asked = [
        _ask(api, token, org_id, "document", f"scan-{i}.pdf", "application/pdf", size)
        for i in range(21)
    ]

    # Then the first 20 are given, and the 21st is refused with what the org holds
    assert [a.status_code for a in asked[:20]] == [201] * 20, asked[0].text
    refused = asked[20]
    assert refused.status_code == 409, refused.text
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["type"] == PROBLEM + "storage-quota-reached", problem
    assert (problem["quota_bytes"], problem["used_bytes"], problem["pending_bytes"]) == (
        quota,
        0,
        20 * size,
    )

    # And deleting a pending upload makes room for it
    first = asked[0].json()["media"]["id"]
    assert api.delete(f"/api/v1/media/{first}", token=token).status_code == 204
    again = _ask(api, token, org_id, "document", "scan-20.pdf", "application/pdf", size)
    assert again.status_code == 201, again.text


def test_pdf_is_served_as_an_attachment_and_one_with_javascript_is_rejected(
    api: Api, lab: dict[str, Any]
) -> None:
    token, org_id = lab["token"], lab["org_id"]

    # When a plain PDF is uploaded as a document
    media = _upload(api, token, org_id, "document", "minutes.pdf", PDF, "application/pdf")

    # Then it is ready, kept byte for byte, and downloaded rather than shown
    assert media["state"] == "ready", media
    assert (media["content_type"], media["size"], media["thumbnails"]) == (
        "application/pdf",
        len(PDF),
        [],
    )
    assert media["sha256"] == hashlib.sha256(PDF).hexdigest()
    original = _fetch(media["links"]["original"])
    assert original.content == PDF
    assert original.headers["Content-Type"] == "application/pdf"
    assert original.headers["Content-Disposition"].startswith("attachment;"), original.headers

    # When a PDF that runs a script is uploaded
    scripted = _upload(
        api, token, org_id, "document", "invoice.pdf", PDF_WITH_SCRIPT, "application/pdf"
    )

    # Then it is rejected, saying why
    assert scripted["state"] == "rejected", scripted
    assert "/JavaScript" in scripted["reason"] and scripted["links"] is None, scripted


def test_avatar_on_the_profile_must_be_the_callers_ready_avatar(
    api: Api, lab: dict[str, Any]
) -> None:
    # Given a ready avatar of the owner, one of the viewer, and a ready attachment
    token, org_id = lab["token"], lab["org_id"]
    mine = _upload(api, token, org_id, "avatar", "me.png", _png(96, 96), "image/png")
    theirs = _upload(api, lab["viewer"], org_id, "avatar", "me.png", _png(80, 80), "image/png")
    attachment = _upload(api, token, org_id, "attachment", "a.png", _png(90, 60), "image/png")
    assert [m["state"] for m in (mine, theirs, attachment)] == ["ready"] * 3

    # When the owner sets their own avatar
    updated = api.patch("/api/v1/users/me", token=token, json={"avatar_media_id": mine["id"]})

    # Then the profile shows it
    assert updated.status_code == 200, updated.text
    assert updated.json()["avatar_media_id"] == mine["id"]
    me = api.get("/api/v1/users/me", token=token)
    assert me.status_code == 200 and me.json()["avatar_media_id"] == mine["id"], me.text

    # And another user's avatar or a file of another purpose is refused on the field
    for other in (theirs, attachment):
        refused = api.patch("/api/v1/users/me", token=token, json={"avatar_media_id": other["id"]})
        assert refused.status_code == 422, refused.text
        assert _field_errors(refused) == {"avatar_media_id"}, refused.text
    assert api.get("/api/v1/users/me", token=token).json()["avatar_media_id"] == mine["id"]

    # When it is set to null, the avatar is removed
    removed = api.patch("/api/v1/users/me", token=token, json={"avatar_media_id": None})
    assert removed.status_code == 200, removed.text
    assert api.get("/api/v1/users/me", token=token).json()["avatar_media_id"] is None


def test_viewer_may_upload_a_face_but_no_content(api: Api, lab: dict[str, Any]) -> None:
    viewer, org_id = lab["viewer"], lab["org_id"]
    attachment = _ask(api, viewer, org_id, "attachment", "notes.png", "image/png", 1000)
    assert attachment.status_code == 403, attachment.text
    avatar = _ask(api, viewer, org_id, "avatar", "face.png", "image/png", 1000)
    assert avatar.status_code == 201, avatar.text
    # And a viewer reads the org's files
    assert api.get("/api/v1/media", token=viewer, params={"org_id": org_id}).status_code == 200
