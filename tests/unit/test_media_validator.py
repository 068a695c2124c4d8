"""The validator under moto (kumo.media.validator, ADR 28): S3's events through SQS, the bytes
judged against the upload's purpose, ready files stored clean under media/ and counted in the
org's usage, everything else rejected with a reason; the quarantine object goes either way,
redeliveries change nothing, and only what a retry may cure is handed back to SQS."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from botocore.exceptions import ClientError
from kumo.core import dynamo
from kumo.core.config import get_settings
from kumo.core.errors import Conflict
from kumo.core.ids import new_id
from kumo.media import storage, uploads, validator
from kumo.media.models import (
    PendingUploadModel,
    UsageModel,
    org_key,
    pending_sort_key,
    quarantine_key,
)
from kumo.media.schemas import CreateUploadRequest
from kumo.media.storage import find
from PIL import Image

from tests.support.aws import bus_recorder
from tests.support.factories import Fleet, new_fleet
from tests.unit.conftest import FakeContext, load_handler

pytestmark = pytest.mark.usefixtures("aws", "media_bucket")

BUS = "kumo-test"
CLEAN_PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
SCRIPTED_PDF = (
    b"%PDF-1.7\n1 0 obj << /Type /Catalog /OpenAction << /S /JavaScript /JS (app.alert(1)) >> "
    b">> endobj\n%%EOF\n"
)


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def org() -> Fleet:
    return new_fleet("Acme", devices=0)


@pytest.fixture
def bus_events() -> Callable[[], list[dict[str, Any]]]:
    """Every kumo.media event on the bus."""
    return bus_recorder("kumo.media", BUS)


def png(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def pending(
    org: Fleet, *, purpose: str = "attachment", content_type: str = "image/png", size: int = 10_000
) -> tuple[str, str]:
    """A pending upload asked for by the org's owner: (media id, quarantine key)."""
    request: Any = CreateUploadRequest(
        org_id=org.org_id,
        purpose=purpose,
        file_name="upload.bin",
        content_type=content_type,
        size=size,
    )
    media, form = uploads.request_upload(user_id=org.owner_id, request=request)
    return media.media_id, form.fields["key"]


def put(key: str, data: bytes) -> None:
    boto3.client("s3").put_object(Bucket=get_settings().media_bucket, Key=key, Body=data)


def s3_event(*keys: str, sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """The body S3 sends for objects created by a form's POST, keys encoded as S3 does."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Post",
                "s3": {
                    "bucket": {"name": get_settings().media_bucket},
                    "object": {"key": quote_plus(key), "size": (sizes or {}).get(key, 1)},
                },
            }
            for key in keys
        ]
    }


def sqs_record(body: Any, *, raw: bool = False) -> dict[str, Any]:
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "handle",
        "body": body if raw else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "eventSource": "aws:sqs",
    }


def objects(prefix: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=get_settings().media_bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def usage(org_id: str) -> tuple[int, int]:
    return storage.stored_bytes(org_id)


def is_pending_upload(org_id: str, media_id: str) -> bool:
    try:
        PendingUploadModel.get(org_key(org_id), pending_sort_key(media_id), consistent_read=True)
    except PendingUploadModel.DoesNotExist:
        return False
    return True


def upload_and_judge(org: Fleet, data: bytes, **kwargs: Any) -> str:
    """A file uploaded to its form's key and judged; answers its media id."""
    media_id, key = pending(org, **kwargs)
    put(key, data)
    validator.handle(sqs_record(s3_event(key, sizes={key: len(data)})))
    return media_id


# --- ready -------------------------------------------------------------------------------


def test_a_png_becomes_ready_with_thumbnails_and_counts_in_the_usage(org, bus_events):
    # Given a pending attachment whose PNG has reached quarantine
    media_id, key = pending(org)
    assert key == quarantine_key(org.org_id, media_id)
    put(key, png((64, 48)))

    # When S3's event is handled
    validator.handle(sqs_record(s3_event(key)))

    # Then the file is ready as what its bytes are, with its thumbnails under media/
    media = find(media_id)
    assert media is not None
    assert (media.state, media.kind, media.content_type) == ("ready", "png", "image/png")
    assert (media.width, media.height) == (64, 48)
    assert media.thumbnail_sizes == {128, 512}
    assert media.sha256 and len(media.sha256) == 64 and media.expires_at is None
    prefix = str(media.object_prefix)
    assert prefix.startswith(f"media/{org.org_id}/{media_id}/")
    assert objects(f"media/{org.org_id}/{media_id}/") == [
        f"{prefix}128.webp",
        f"{prefix}512.webp",
        f"{prefix}original",
    ]
    # And the org's usage counts every object, the pending upload is gone, and so is the upload
    assert usage(org.org_id) == (media.stored_bytes, 3) and media.stored_objects == 3
    assert not is_pending_upload(org.org_id, media_id)
    assert objects("quarantine/") == []
    # And media.ready is on the bus
    (event,) = bus_events()
    assert (event["source"], event["detail-type"]) == ("kumo.media", "media.ready")
    assert event["detail"]["media_id"] == media_id and event["detail"]["org_id"] == org.org_id


def test_the_stored_original_is_the_re_encoded_picture(org):
    # Given a PNG carrying a text chunk
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret")
    out = io.BytesIO()
    Image.new("RGB", (20, 20)).save(out, "PNG", pnginfo=info)

    # When it is judged
    media_id = upload_and_judge(org, out.getvalue())

    # Then what is stored has none of it
    media = find(media_id)
    assert media is not None
    stored = boto3.client("s3").get_object(
        Bucket=get_settings().media_bucket, Key=f"{media.object_prefix}original"
    )
    assert stored["ContentType"] == "image/png"
    assert "Comment" not in Image.open(io.BytesIO(stored["Body"].read())).info


def test_a_clean_pdf_becomes_a_ready_document_without_thumbnails(org):
    media_id = upload_and_judge(org, CLEAN_PDF, purpose="document", content_type="application/pdf")

    media = find(media_id)
    assert media is not None
    assert (media.state, media.kind, media.content_type) == ("ready", "pdf", "application/pdf")
    assert (media.width, media.height, media.thumbnail_sizes) == (None, None, None)
    assert objects(f"media/{org.org_id}/") == [f"{media.object_prefix}original"]
    assert usage(org.org_id) == (len(CLEAN_PDF), 1)


# --- rejected ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 100, b"MZ\x90\x00\x03\x00" + b"\x00" * 100],
    ids=["elf", "mz"],
)
def test_an_executable_is_rejected_and_nothing_is_stored(org, bus_events, data):
    media_id = upload_and_judge(org, data)

    media = find(media_id)
    assert media is not None and media.state == "rejected"
    assert media.reason and media.reason.startswith("The file is not a PNG, JPEG")
    assert media.expires_at is not None and media.expires_at > media.upload_deadline
    assert objects("media/") == [] and objects("quarantine/") == []
    assert not is_pending_upload(org.org_id, media_id)
    assert usage(org.org_id) == (0, 0)
    (event,) = bus_events()
    assert event["detail-type"] == "media.rejected"
    assert event["detail"]["media_id"] == media_id


def test_a_png_uploaded_as_a_document_is_rejected(org):
    # A document is a PDF, whatever the form was asked for
    media_id = upload_and_judge(org, png(), purpose="document", content_type="application/pdf")

    media = find(media_id)
    assert media is not None and media.state == "rejected"
    assert media.reason == "The file is a PNG; a document is one of: PDF."
    assert objects("media/") == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (png((64, 64))[:60], "The file does not decode as png."),
        (SCRIPTED_PDF, "The PDF carries /JavaScript, which Kumo does not serve."),
        (b"%PDF-1.7\n1 0 obj << >> endobj\n", "The PDF is incomplete: it has no end marker."),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
    ],
    ids=["truncated-png", "pdf-javascript", "pdf-without-end", "svg"],
)
def test_bytes_that_do_not_hold_up_are_rejected(org, data, reason):
    media_id = upload_and_judge(org, data)

    media = find(media_id)
    assert media is not None and media.state == "rejected"
    if reason is not None:
        assert media.reason == reason
    assert objects("media/") == [] and objects("quarantine/") == []


def test_a_file_that_does_not_fit_the_quota_is_rejected_and_its_objects_removed(org):
    # Given a pending upload, and an org that then fills up to 10 bytes short of its quota
    media_id, key = pending(org)
    quota = get_settings().media_bytes_per_org
    UsageModel(org_key(org.org_id), org_id=org.org_id, bytes=quota - 10, objects=7).save()
    put(key, png())

    # When the PNG is judged
    validator.handle(sqs_record(s3_event(key)))

    # Then it is rejected for the storage, and nothing of it stays under media/
    media = find(media_id)
    assert media is not None and media.state == "rejected"
    assert media.reason == f"The organization's storage ({quota:,} bytes) is full."
    assert objects("media/") == [] and objects("quarantine/") == []
    assert usage(org.org_id) == (quota - 10, 7)
    assert not is_pending_upload(org.org_id, media_id)


# --- redeliveries and strays ---------------------------------------------------------------


def test_a_redelivered_event_changes_nothing_the_second_time(org, bus_events):
    # Given a PNG judged ready
    media_id, key = pending(org)
    put(key, png())
    record = sqs_record(s3_event(key))
    validator.handle(record)
    first = find(media_id)
    assert first is not None and first.state == "ready"
    counted = usage(org.org_id)
    assert len(bus_events()) == 1

    # When the same message comes again
    validator.handle(record)

    # Then the record, the usage and the bus are as they were
    again = find(media_id)
    assert again is not None
    assert (again.state, again.sha256, again.judged_at) == ("ready", first.sha256, first.judged_at)
    assert usage(org.org_id) == counted
    assert bus_events() == []


def test_a_second_upload_with_the_same_form_is_removed_unread(org):
    # Given a file judged ready, and other bytes posted with its form again
    media_id, key = pending(org)
    put(key, png())
    validator.handle(sqs_record(s3_event(key)))
    first = find(media_id)
    assert first is not None
    put(key, b"\x7fELF" + b"\x00" * 64)

    # When their event is handled
    validator.handle(sqs_record(s3_event(key)))

    # Then they are deleted, and the file is the one judged
    assert objects("quarantine/") == []
    again = find(media_id)
    assert again is not None and (again.state, again.sha256) == ("ready", first.sha256)


def test_an_upload_without_a_record_is_deleted(org):
    # Given an object in quarantine for a media id nobody asked a form for
    key = quarantine_key(org.org_id, new_id())
    put(key, png())

    # When its event is handled
    validator.handle(sqs_record(s3_event(key)))

    # Then it is gone, and nothing was stored
    assert objects("quarantine/") == [] and objects("media/") == []


def test_an_upload_under_another_orgs_key_is_deleted(org):
    # Given a pending upload, and an object at its media id under another org's prefix
    media_id, _ = pending(org)
    key = quarantine_key(new_fleet("Other", devices=0).org_id, media_id)
    put(key, png())

    # When its event is handled / Then it is deleted and the record stays pending
    validator.handle(sqs_record(s3_event(key)))
    assert objects("quarantine/") == []
    media = find(media_id)
    assert media is not None and media.state == "pending"


def test_a_test_event_and_a_body_that_is_no_s3_event_are_dropped(org):
    # Given S3's test event, a body that is no JSON, and JSON that is not S3's
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2024-05-01T12:00:00.000Z",
        "Bucket": get_settings().media_bucket,
        "RequestId": "R",
        "HostId": "H",
    }
    records = [
        sqs_record(test_event),
        sqs_record("this is not json {", raw=True),
        sqs_record(["a", "list"]),
        sqs_record("", raw=True),
    ]

    # When each is handled / Then none raises
    for record in records:
        validator.handle(record)

    # And through the function nothing is handed back to SQS
    handler = load_handler("media/validate_upload")
    assert handler.lambda_handler({"Records": records}, FakeContext()) == {"batchItemFailures": []}


# --- through the function -----------------------------------------------------------------


def test_only_the_record_s3_failed_for_is_handed_back(org, monkeypatch):
    # Given two uploads, and S3 failing to read one of them
    good_id, good_key = pending(org)
    bad_id, bad_key = pending(org)
    put(good_key, png())
    put(bad_key, png())
    client = storage.s3()
    real_get_object = client.get_object

    def get_object(**kwargs: Any) -> Any:
        if kwargs["Key"] == bad_key:
            raise ClientError(
                {"Error": {"Code": "InternalError", "Message": "We encountered an error"}},
                "GetObject",
            )
        return real_get_object(**kwargs)

    good, bad = sqs_record(s3_event(good_key)), sqs_record(s3_event(bad_key))
    handler = load_handler("media/validate_upload")

    # When the batch is handled
    with monkeypatch.context() as patch:
        patch.setattr(client, "get_object", get_object)
        answer = handler.lambda_handler({"Records": [good, bad]}, FakeContext())

    # Then only the failed message goes back, its upload left for the retry
    assert answer == {"batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}
    judged, waiting = find(good_id), find(bad_id)
    assert judged is not None and judged.state == "ready"
    assert waiting is not None and waiting.state == "pending"
    assert objects("quarantine/") == [bad_key]

    # And the retry, with S3 back, judges it
    assert handler.lambda_handler({"Records": [bad]}, FakeContext()) == {"batchItemFailures": []}
    retried = find(bad_id)
    assert retried is not None and retried.state == "ready"
    assert usage(org.org_id)[1] == 6


def test_a_key_encoded_as_s3_does_is_decoded(org):
    # Given an event whose key S3 encoded ('/' as %2F)
    media_id, key = pending(org)
    put(key, png())
    body = s3_event(key)
    assert "%2F" in body["Records"][0]["s3"]["object"]["key"]

    # When it is handled / Then the object it names is judged
    validator.handle(sqs_record(body))
    media = find(media_id)
    assert media is not None and media.state == "ready"


def test_a_batch_of_several_s3_records_in_one_message_judges_each(org):
    first_id, first_key = pending(org)
    second_id, second_key = pending(org)
    put(first_key, png())
    put(second_key, b"MZ" + b"\x00" * 64)

    validator.handle(sqs_record(s3_event(first_key, second_key)))

    states = [m.state for m in (find(first_id), find(second_id)) if m is not None]
    assert states == ["ready", "rejected"]


# --- transactions cancelled for reasons other than the quota ---------------------------------


def test_a_transaction_cancelled_by_a_concurrent_write_is_retried_not_rejected(org, monkeypatch):
    # Given a PNG whose ready transaction DynamoDB cancels once for a concurrent write to the
    # usage item (TransactionConflict): the quota holds and the record is pending
    media_id, key = pending(org)
    put(key, png())
    real_transaction = dynamo.transaction
    cancelled: list[str] = []

    @contextmanager
    def conflicted_once(explain: Any, *, changed: str) -> Iterator[Any]:
        if not cancelled:
            cancelled.append(changed)
            raise explain() or Conflict(changed)  # as dynamo.transaction does; nothing written
        with real_transaction(explain, changed=changed) as write:
            yield write

    monkeypatch.setattr(dynamo, "transaction", conflicted_once)
    record = sqs_record(s3_event(key))
    handler = load_handler("media/validate_upload")

    # When the message is handled
    answer = handler.lambda_handler({"Records": [record]}, FakeContext())

    # Then it goes back to SQS, the file still pending and its upload still in quarantine
    assert answer == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    media = find(media_id)
    assert media is not None and media.state == "pending", media and media.reason
    assert objects("quarantine/") == [key]
    written = objects("media/")

    # And its redelivery makes it ready with the same objects, written again under their keys
    assert handler.lambda_handler({"Records": [record]}, FakeContext()) == {"batchItemFailures": []}
    media = find(media_id)
    assert media is not None and media.state == "ready"
    assert objects("media/") == written and len(written) == 3


def test_a_commit_answered_as_cancelled_keeps_its_objects(org, monkeypatch, bus_events):
    # Given a PNG whose ready transaction commits, but whose answer is lost and the retried
    # request cancelled (the record is no longer pending): what an SDK retry can do
    media_id, key = pending(org)
    put(key, png())
    real_transaction = dynamo.transaction

    @contextmanager
    def committed_then_cancelled(explain: Any, *, changed: str) -> Iterator[Any]:
        with real_transaction(explain, changed=changed) as write:
            yield write
        raise explain() or Conflict(changed)

    monkeypatch.setattr(dynamo, "transaction", committed_then_cancelled)

    # When the message is handled
    validator.handle(sqs_record(s3_event(key)))

    # Then the file is ready, and the objects its record names are there
    media = find(media_id)
    assert media is not None and media.state == "ready"
    prefix = str(media.object_prefix)
    assert objects("media/") == [f"{prefix}128.webp", f"{prefix}512.webp", f"{prefix}original"]
    assert [e["detail-type"] for e in bus_events()] == ["media.ready"]
