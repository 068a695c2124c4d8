"""Media under faults, on the real local stack (ADR 28): S3's event delivered again, and a form
used twice. Neither judges a file twice, counts its bytes twice, or lets bytes that were never
judged reach a link."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests
from PIL import Image

from tests.integration.conftest import DEADLINE_SECONDS, Api, Outbox, signed_up_user

QUEUE = "kumo-local-media-uploads"


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (90, 60), colour).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def owner(api: Api, outbox: Outbox) -> dict[str, str]:
    user = signed_up_user(api, outbox, "media-faults")
    token = user["access_token"]
    answer = api.post("/api/v1/orgs", token=token, json={"name": "Faulty uploads"})
    assert answer.status_code == 201, answer.text
    return {"token": token, "org_id": answer.json()["id"]}


def _form(api: Api, owner: dict[str, str], size: int) -> dict[str, Any]:
    asked = {
        "org_id": owner["org_id"],
        "purpose": "attachment",
        "file_name": "twice.png",
        "content_type": "image/png",
        "size": size,
    }
    answer = api.post("/api/v1/media/uploads", token=owner["token"], json=asked)
    assert answer.status_code == 201, answer.text
    upload: dict[str, Any] = answer.json()
    return upload


def _send(form: dict[str, Any], data: bytes) -> None:
    sent = requests.post(
        form["url"], data=form["fields"], files={"file": ("twice.png", data)}, timeout=30
    )
    assert sent.status_code == 204, sent.text


def _judged(api: Api, token: str, media_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        media: dict[str, Any] = api.get(f"/api/v1/media/{media_id}", token=token).json()
        if media["state"] != "pending":
            return media
        time.sleep(0.2)
    raise AssertionError(f"{media_id} not judged within {DEADLINE_SECONDS} s")


def _usage(api: Api, owner: dict[str, str]) -> tuple[int, int]:
    answer = api.get("/api/v1/media/usage", token=owner["token"], params=owner)
    body = answer.json()
    return body["bytes"], body["objects"]


def _drained(sqs: Any) -> None:
    """Wait until the validator's queue holds nothing visible or in flight."""
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        if all(counts[name] == "0" for name in names):
            return
        time.sleep(0.3)
    raise AssertionError(f"{QUEUE} not drained within {DEADLINE_SECONDS} s")


def test_an_event_delivered_again_changes_nothing(
    api: Api, owner: dict[str, str], aws: Callable[[str], Any]
) -> None:
    # Given a picture judged ready, and what its org stores
    data = _png((200, 40, 40))
    upload = _form(api, owner, len(data))
    _send(upload["upload"], data)
    media_id = upload["media"]["id"]
    first = _judged(api, owner["token"], media_id)
    assert first["state"] == "ready", first
    stored = _usage(api, owner)

    # When S3's event for it reaches the validator twice more, as SQS may deliver it
    sqs = aws("sqs")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    key = upload["upload"]["fields"]["key"]
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Post",
                "s3": {"object": {"key": quote_plus(key, safe="/"), "size": len(data)}},
            }
        ]
    }
    for _ in range(2):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
    _drained(sqs)

    # Then the file is as it was judged, and its bytes are counted once
    again = api.get(f"/api/v1/media/{media_id}", token=owner["token"]).json()
    assert (again["state"], again["sha256"], again["judged_at"]) == (
        "ready",
        first["sha256"],
        first["judged_at"],
    )
    assert _usage(api, owner) == stored


def test_a_form_used_twice_serves_only_the_bytes_judged(
    api: Api, owner: dict[str, str], aws: Callable[[str], Any]
) -> None:
    # Given a picture uploaded with its form and judged
    red, blue = _png((220, 30, 30)), _png((30, 30, 220))
    upload = _form(api, owner, max(len(red), len(blue)))
    _send(upload["upload"], red)
    media_id = upload["media"]["id"]
    judged = _judged(api, owner["token"], media_id)
    assert judged["state"] == "ready", judged

    # When the same form, still valid, uploads other bytes
    _send(upload["upload"], blue)
    _drained(aws("sqs"))

    # Then the file still serves the first picture, and nothing is left in quarantine
    media = api.get(f"/api/v1/media/{media_id}", token=owner["token"]).json()
    served = requests.get(media["links"]["original"], timeout=30)
    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() == judged["sha256"]
    with Image.open(io.BytesIO(served.content)) as picture:
        assert picture.convert("RGB").getpixel((0, 0)) == (220, 30, 30)
    bucket = upload["upload"]["url"].rstrip("/").rsplit("/", 1)[-1]
    left = aws("s3").list_objects_v2(Bucket=bucket, Prefix=upload["upload"]["fields"]["key"])
    assert left.get("KeyCount", 0) == 0
