"""Contract with the local engine's S3: what the media context (issue 11, ADR 28) relies on,
and the differences from AWS it has.

Media never lets a file through a function: a client uploads with a pre-signed POST into
`quarantine/`, the bucket tells a queue, the validator judges the bytes and moves what it keeps
to `media/` with a copy, and readers get pre-signed GET links. These tests pin each S3 step of
that path on MiniStack 1.5.33, run as Kumo runs it (its AUTH off), against a bucket and a queue
of their own that they delete afterwards.

A `test_gap_*` test pins a MiniStack difference from AWS: when one starts failing, the engine
has caught up; update docs/adr/0028 and /work/shared/LOCAL_ENGINE.md and drop the test (or turn
it into the AWS behaviour).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import boto3
import pytest
import requests
from botocore.config import Config

from tests.integration.conftest import unique_name

MAX_BYTES = 64
PREFIX = "quarantine/"
# A key with a space and a plus: S3 events carry keys quote_plus-encoded, so a validator that
# forgets to decode them looks for "a+b%2Bc.png" and finds nothing.
AWKWARD_KEY = "quarantine/org-1/a b+c.png"
# Events reach the queue within milliseconds; these bound every wait (well under 20 s).
ARRIVAL_SECONDS = 10.0
SILENCE_SECONDS = 3.0
HTTP_TIMEOUT = 10


# --- clients, a bucket and a queue of the tests' own ----------------------------------------


@pytest.fixture(scope="module")
def s3(endpoints: dict[str, Any]) -> Any:
    """An S3 client that presigns with SigV4, as kumo.media's own client does."""
    return boto3.client(
        "s3",
        endpoint_url=endpoints["gateway"],
        region_name=endpoints["region"],
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(signature_version="s3v4"),
    )


@pytest.fixture(scope="module")
def sqs(aws: Callable[[str], Any]) -> Any:
    return aws("sqs")


def _empty_and_delete(s3: Any, bucket: str) -> None:
    with suppress(Exception):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    with suppress(Exception):
        s3.delete_bucket(Bucket=bucket)


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    """A throw-away bucket, emptied and deleted afterwards."""
    name = unique_name("kumo-s3-contract")
    s3.create_bucket(Bucket=name)
    yield name
    _empty_and_delete(s3, name)


@pytest.fixture
def queue(sqs: Any, bucket: str) -> Iterator[dict[str, str]]:
    """A throw-away queue that the bucket may send to (the policy AWS needs), deleted after."""
    url: str = sqs.create_queue(QueueName=unique_name("kumo-s3-contract"))["QueueUrl"]
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    yield {"url": url, "arn": arn}
    with suppress(Exception):
        sqs.delete_queue(QueueUrl=url)


def _notify_quarantine(s3: Any, bucket: str, queue_arn: str) -> None:
    """The media bucket's one notification (ADR 28): ObjectCreated:* on quarantine/."""
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "quarantine",
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": PREFIX}]}},
                }
            ]
        },
    )


def _receive(
    sqs: Any,
    queue_url: str,
    *,
    seconds: float,
    until: Callable[[list[dict[str, Any]]], bool] | None = None,
) -> list[dict[str, Any]]:
    """The message bodies that arrive within `seconds` (deleted as read), stopping early once
    `until` holds for what was read; without `until`, listens for the whole time."""
    bodies: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=max(1, min(5, int(remaining))),
        )
        for message in answer.get("Messages", []):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if until is not None and until(bodies):
            break
    return bodies


def _records(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for body in bodies for record in body.get("Records", [])]


# --- pre-signed POST forms -------------------------------------------------------------------


def _form(
    s3: Any,
    bucket: str,
    key: str,
    *,
    content_type: str = "image/png",
    fields: dict[str, str] | None = None,
    conditions: list[Any] | None = None,
    expires_in: int = 900,
) -> dict[str, Any]:
    """A form like the one POST /api/v1/media/uploads answers: the exact key (boto3 adds
    `{"key": key}` and `{"bucket": bucket}`), at most MAX_BYTES, an image type."""
    form: dict[str, Any] = s3.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": content_type, **(fields or {})},
        Conditions=[
            ["content-length-range", 1, MAX_BYTES],
            ["starts-with", "$Content-Type", "image/"],
            *(conditions or []),
        ],
        ExpiresIn=expires_in,
    )
    return form


def _upload(form: dict[str, Any], body: bytes, **overrides: str) -> requests.Response:
    """Send the form as a browser does: its fields, changed by `overrides`, then the file."""
    data = {**form["fields"], **overrides}
    return requests.post(
        form["url"],
        data=data,
        files={"file": ("picture.png", body, "image/png")},
        timeout=HTTP_TIMEOUT,
    )


def _error(response: requests.Response) -> tuple[str, str]:
    """S3's error code and message from an XML error answer."""
    code = re.search(r"<Code>(.*?)</Code>", response.text)
    message = re.search(r"<Message>(.*?)</Message>", response.text)
    return (code.group(1) if code else ""), (message.group(1) if message else "")


def _stored(s3: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def _flip(signature: str) -> str:
    """The signature with its first hex digit changed: same length, same alphabet, wrong."""
    return ("1" if signature[0] == "0" else "0") + signature[1:]


@pytest.mark.parametrize(("status_field", "status"), [(None, 204), ("201", 201)])
def test_presigned_post_within_its_limits_is_stored(
    s3: Any, bucket: str, status_field: str | None, status: int
) -> None:
    """The upload path itself: a client's form upload within the policy lands in quarantine/
    with the declared type, answering 204, or 201 with a PostResponse when the form asks for it
    (`success_action_status`, which the policy must then cover)."""
    key = f"{PREFIX}org-1/ok-{status}"
    extra = {"success_action_status": status_field} if status_field else {}
    form = _form(s3, bucket, key, fields=extra, conditions=[extra] if extra else None)
    body = b"\x89PNG\r\n\x1a\n" + b"x" * (MAX_BYTES - 8)

    answer = _upload(form, body)

    assert answer.status_code == status, answer.text
    if status == 201:
        assert f"<Key>{key}</Key>" in answer.text
        assert f"<Bucket>{bucket}</Bucket>" in answer.text
    stored = s3.get_object(Bucket=bucket, Key=key)
    assert stored["Body"].read() == body
    assert stored["ContentType"] == "image/png"


@pytest.mark.parametrize(
    ("size", "code"), [(MAX_BYTES + 1, "EntityTooLarge"), (0, "EntityTooSmall")]
)
def test_presigned_post_outside_its_size_range_is_refused(
    s3: Any, bucket: str, size: int, code: str
) -> None:
    """`content-length-range` is the form's size fence: the purpose's limit and the org's
    quota are checked when the form is issued, so a bigger (or empty) file must not land."""
    form = _form(s3, bucket, f"{PREFIX}org-1/sized")

    answer = _upload(form, b"x" * size)

    assert answer.status_code == 400, answer.text
    assert _error(answer)[0] == code
    assert _stored(s3, bucket) == []


def test_presigned_post_with_a_content_type_outside_its_policy_is_refused(
    s3: Any, bucket: str
) -> None:
    """`starts-with $Content-Type image/` keeps an avatar form from storing text/html that a
    browser would render; the validator sniffs the bytes anyway, but the fence must hold."""
    form = _form(s3, bucket, f"{PREFIX}org-1/typed")

    answer = _upload(form, b"<html></html>", **{"Content-Type": "text/html"})

    assert answer.status_code == 403, answer.text
    assert _error(answer) == (
        "AccessDenied",
        'Invalid according to Policy: Policy Condition failed: ["starts-with", "$Content-Type", '
        '"image/"]',
    )
    assert _stored(s3, bucket) == []


def test_presigned_post_with_an_exact_content_type_refuses_another(s3: Any, bucket: str) -> None:
    """A form may name the declared type exactly (`{"Content-Type": type}`, an `eq`
    condition), as kumo.media.uploads does; another image type is refused as well."""
    form = s3.generate_presigned_post(
        Bucket=bucket,
        Key=f"{PREFIX}org-1/exact",
        Fields={"Content-Type": "image/png"},
        Conditions=[{"Content-Type": "image/png"}, ["content-length-range", 1, MAX_BYTES]],
        ExpiresIn=900,
    )

    answer = _upload(form, b"x", **{"Content-Type": "image/jpeg"})

    assert answer.status_code == 403, answer.text
    assert _error(answer) == (
        "AccessDenied",
        'Invalid according to Policy: Policy Condition failed: ["eq", "$Content-Type", '
        '"image/png"]',
    )
    assert _stored(s3, bucket) == []


def test_presigned_post_with_a_field_its_policy_does_not_cover_is_refused(
    s3: Any, bucket: str
) -> None:
    """A client must not add what Kumo did not sign for (metadata, an ACL, tags, a redirect):
    S3 refuses a form field no condition covers."""
    form = _form(s3, bucket, f"{PREFIX}org-1/extra")

    answer = _upload(form, b"x", **{"x-amz-meta-owner": "someone-else"})

    assert answer.status_code == 403, answer.text
    assert _error(answer) == (
        "AccessDenied",
        "Invalid according to Policy: Extra input fields: x-amz-meta-owner",
    )
    assert _stored(s3, bucket) == []


def test_presigned_post_for_another_key_is_refused(s3: Any, bucket: str) -> None:
    """The key is `quarantine/<org>/<media id>` and nothing else: a form must not write
    another media id, another org's folder or anything under media/."""
    key = f"{PREFIX}org-1/mine"
    form = _form(s3, bucket, key)

    answer = _upload(form, b"x", key="media/org-2/theirs/original")

    assert answer.status_code == 403, answer.text
    assert _error(answer) == (
        "AccessDenied",
        f'Invalid according to Policy: Policy Condition failed: ["eq", "$key", "{key}"]',
    )
    assert _stored(s3, bucket) == []


def test_presigned_post_after_its_expiration_is_refused(s3: Any, bucket: str) -> None:
    """A form lasts 15 minutes and its pending record a little longer: an upload after the
    policy's expiration must not land once the record that would judge it is gone."""
    form = _form(s3, bucket, f"{PREFIX}org-1/late", expires_in=-60)

    answer = _upload(form, b"x")

    assert answer.status_code == 403, answer.text
    assert _error(answer) == ("AccessDenied", "Invalid according to Policy: Policy expired.")
    assert _stored(s3, bucket) == []


def test_gap_presigned_post_signature_is_not_checked(s3: Any, bucket: str) -> None:
    """On AWS a form whose signature does not match its policy is refused (403
    SignatureDoesNotMatch), so a client cannot rewrite the policy it was given. MiniStack checks
    a form's signature only with its AUTH on; Kumo runs it with AUTH off, so locally a wrong
    signature, and even a policy the client rewrote for itself, is accepted (the policy's own
    conditions still apply). The local tests therefore cannot prove the signature; what they
    prove is the validator's judgement on the S3 event, which is the check that matters."""
    key = f"{PREFIX}org-1/forged"
    form = _form(s3, bucket, key)

    flipped = _upload(form, b"x", **{"x-amz-signature": _flip(form["fields"]["x-amz-signature"])})
    assert flipped.status_code == 204, (
        "MiniStack now checks a POST form's signature with AUTH off: update ADR 28 and "
        "LOCAL_ENGINE.md, and make this a refusal (403 SignatureDoesNotMatch)"
    )

    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    policy["conditions"] = [
        ["content-length-range", 1, MAX_BYTES * 10]
        if isinstance(c, list) and c[0] == "content-length-range"
        else c
        for c in policy["conditions"]
    ]
    rewritten = base64.b64encode(json.dumps(policy).encode()).decode()
    larger = _upload(form, b"x" * (MAX_BYTES * 2), policy=rewritten)
    assert larger.status_code == 204, larger.text
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == MAX_BYTES * 2


def test_gap_unsigned_requests_read_and_write_objects(s3: Any, bucket: str) -> None:
    """On AWS the media bucket is private: a GET or PUT without a signature is refused (403
    AccessDenied). MiniStack with AUTH off serves and stores them, so locally anyone can write
    straight into quarantine/ without a form, and read any file without a link: only the
    validator stands between an upload and media/, and link checks are proven with signed
    links (test_presigned_get_*), never by an unsigned request being refused."""
    base = s3.meta.endpoint_url
    s3.put_object(Bucket=bucket, Key="media/org-1/m1/original", Body=b"kept")

    read = requests.get(f"{base}/{bucket}/media/org-1/m1/original", timeout=HTTP_TIMEOUT)
    written = requests.put(
        f"{base}/{bucket}/{PREFIX}org-1/unsigned", data=b"x", timeout=HTTP_TIMEOUT
    )

    assert (read.status_code, read.content) == (200, b"kept"), (
        "MiniStack now refuses unsigned reads with AUTH off: update ADR 28 and this test"
    )
    assert written.status_code == 200, written.text
    assert f"{PREFIX}org-1/unsigned" in _stored(s3, bucket)


# --- the bucket's notification ---------------------------------------------------------------


def test_a_notification_configuration_sends_a_test_event(
    s3: Any, sqs: Any, bucket: str, queue: dict[str, str]
) -> None:
    """Every put of the configuration (so every deploy that changes the bucket) sends an
    `s3:TestEvent` with no `Records`, on AWS as here: the validator must skip it rather than
    fail the batch and send it to the dead-letter queue."""
    for _ in range(2):
        _notify_quarantine(s3, bucket, queue["arn"])
        bodies = _receive(sqs, queue["url"], seconds=ARRIVAL_SECONDS, until=bool)
        assert len(bodies) == 1, bodies
        (event,) = bodies
        assert event["Event"] == "s3:TestEvent"
        assert event["Service"] == "Amazon S3"
        assert event["Bucket"] == bucket
        assert "Records" not in event


def test_a_post_under_the_prefix_sends_a_created_record_with_a_quote_plus_key(
    s3: Any, sqs: Any, bucket: str, queue: dict[str, str]
) -> None:
    """The validator starts from this record: one `ObjectCreated:Post` per upload, naming the
    bucket and the key, the key `quote_plus`-encoded as on AWS, so it must `unquote_plus` it."""
    _notify_quarantine(s3, bucket, queue["arn"])
    _receive(sqs, queue["url"], seconds=ARRIVAL_SECONDS, until=bool)  # the test event
    form = _form(s3, bucket, AWKWARD_KEY)
    assert _upload(form, b"x" * 10).status_code == 204

    bodies = _receive(sqs, queue["url"], seconds=ARRIVAL_SECONDS, until=lambda b: bool(_records(b)))

    (record,) = _records(bodies)
    assert record["eventSource"] == "aws:s3"
    assert record["eventName"] == "ObjectCreated:Post"
    assert record["s3"]["configurationId"] == "quarantine"
    assert record["s3"]["bucket"]["name"] == bucket
    event_key = record["s3"]["object"]["key"]
    assert event_key == quote_plus(AWKWARD_KEY, safe="/") == "quarantine/org-1/a+b%2Bc.png"
    assert unquote_plus(event_key) == AWKWARD_KEY
    assert record["s3"]["object"]["size"] == 10


def test_an_object_created_outside_the_prefix_sends_nothing(
    s3: Any, sqs: Any, bucket: str, queue: dict[str, str]
) -> None:
    """The validator moves what it keeps from quarantine/ to media/ with a copy; that copy must
    not send a second event (it would judge its own output). A put under quarantine/ afterwards
    does send one, so the silence is the filter's and not a broken notification."""
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}org-1/m1", Body=b"x", ContentType="image/png")
    _notify_quarantine(s3, bucket, queue["arn"])
    _receive(sqs, queue["url"], seconds=ARRIVAL_SECONDS, until=bool)  # the test event

    s3.copy_object(
        Bucket=bucket,
        Key="media/org-1/m1/original",
        CopySource={"Bucket": bucket, "Key": f"{PREFIX}org-1/m1"},
    )
    s3.put_object(Bucket=bucket, Key="media/org-1/m1/128.webp", Body=b"y")
    assert _receive(sqs, queue["url"], seconds=SILENCE_SECONDS) == []

    s3.put_object(Bucket=bucket, Key=f"{PREFIX}org-1/m2", Body=b"z")
    bodies = _receive(sqs, queue["url"], seconds=ARRIVAL_SECONDS, until=lambda b: bool(_records(b)))
    assert [(r["eventName"], r["s3"]["object"]["key"]) for r in _records(bodies)] == [
        ("ObjectCreated:Put", f"{PREFIX}org-1/m2")
    ]


# --- lifecycle -------------------------------------------------------------------------------


def test_lifecycle_rule_on_quarantine_is_stored(s3: Any, bucket: str) -> None:
    """On AWS the expiration rule on quarantine/ removes what the validator never saw. The
    engine's CloudFormation ignores a bucket's rules, so the launcher puts them in by API in
    this shape (ADR 4, infra/local/stack.py:apply_engine_workarounds). MiniStack
    stores the rule and answers it back, and never applies it: ADR 28 records this from the
    engine's source (1.5.33 keeps the rules for Get/Put/Delete only; nothing else reads them).
    /work/shared/LOCAL_ENGINE.md says nothing about lifecycle rules. A day-long expiry cannot
    be waited for here, so only storage is pinned; locally the pending upload's TTL and its
    quarantine sweep remove abandoned uploads instead."""
    with pytest.raises(s3.exceptions.ClientError) as missing:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert missing.value.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
    rule = {
        "ID": "quarantine-expiry",
        "Status": "Enabled",
        "Filter": {"Prefix": PREFIX},
        "Expiration": {"Days": 1},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    }

    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [rule]})

    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == [rule]


# --- pre-signed GET links --------------------------------------------------------------------


def test_presigned_get_is_refused_after_it_expires(s3: Any, bucket: str) -> None:
    """Links to a file are handed out by whoever holds it, after its own visibility check, and
    expire: a link kept after someone lost access must stop working. MiniStack checks expiry
    even with AUTH off (unlike LOCAL_ENGINE.md's earlier note that it does not)."""
    s3.put_object(Bucket=bucket, Key="media/org-1/m1/original", Body=b"picture")
    # X-Amz-Date has whole seconds: sign just after a second starts, so a 1 s link is still
    # good for the first request.
    time.sleep(1.05 - time.time() % 1)
    link = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "media/org-1/m1/original"},
        ExpiresIn=1,
    )
    fresh = requests.get(link, timeout=HTTP_TIMEOUT)
    assert (fresh.status_code, fresh.content) == (200, b"picture"), fresh.text

    time.sleep(2.5)
    expired = requests.get(link, timeout=HTTP_TIMEOUT)

    assert expired.status_code == 403, expired.text
    assert _error(expired) == ("AccessDenied", "Request has expired")


def test_presigned_get_with_a_wrong_signature_is_refused(s3: Any, bucket: str) -> None:
    """A link names one file: a client must not turn its link into another file's, or forge
    one. MiniStack checks a pre-signed GET's SigV4 signature even with AUTH off."""
    s3.put_object(Bucket=bucket, Key="media/org-1/m1/original", Body=b"picture")
    s3.put_object(Bucket=bucket, Key="media/org-2/m2/original", Body=b"theirs")
    link = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "media/org-1/m1/original"},
        ExpiresIn=60,
    )
    assert requests.get(link, timeout=HTTP_TIMEOUT).status_code == 200
    signature = re.search(r"X-Amz-Signature=([0-9a-f]{64})", link)
    assert signature

    tampered = requests.get(
        link.replace(signature.group(1), _flip(signature.group(1))), timeout=HTTP_TIMEOUT
    )
    retargeted = requests.get(link.replace("org-1/m1", "org-2/m2"), timeout=HTTP_TIMEOUT)

    for refused in (tampered, retargeted):
        assert refused.status_code == 403, refused.text
        assert _error(refused)[0] == "SignatureDoesNotMatch"


# --- copies from quarantine/ to media/ -------------------------------------------------------


def test_copy_with_metadata_directive_copy_keeps_metadata_and_type(s3: Any, bucket: str) -> None:
    """A copy that says nothing (COPY is the default) carries the source's user metadata and
    Content-Type: what the validator keeps must not lose what it was given, or gain nothing."""
    source = f"{PREFIX}org-1/m1"
    s3.put_object(
        Bucket=bucket,
        Key=source,
        Body=b"pdf",
        ContentType="application/pdf",
        Metadata={"media-id": "m1", "org": "org-1"},
    )

    s3.copy_object(
        Bucket=bucket,
        Key="media/org-1/m1/original",
        CopySource={"Bucket": bucket, "Key": source},
        MetadataDirective="COPY",
    )

    copied = s3.head_object(Bucket=bucket, Key="media/org-1/m1/original")
    assert copied["ContentType"] == "application/pdf"
    assert copied["Metadata"] == {"media-id": "m1", "org": "org-1"}


def test_copy_with_metadata_directive_replace_applies_the_new_ones(s3: Any, bucket: str) -> None:
    """The validator stores the type it sniffed, not the one the client declared: REPLACE
    must put the new Content-Type and metadata, and drop the old metadata entirely."""
    source = f"{PREFIX}org-1/m1"
    s3.put_object(
        Bucket=bucket,
        Key=source,
        Body=b"png",
        ContentType="image/jpeg",
        Metadata={"media-id": "m1", "declared": "image/jpeg"},
    )

    s3.copy_object(
        Bucket=bucket,
        Key="media/org-1/m1/original",
        CopySource={"Bucket": bucket, "Key": source},
        MetadataDirective="REPLACE",
        ContentType="image/png",
        Metadata={"media-id": "m1", "sha256": "abc"},
    )

    copied = s3.head_object(Bucket=bucket, Key="media/org-1/m1/original")
    assert copied["ContentType"] == "image/png"
    assert copied["Metadata"] == {"media-id": "m1", "sha256": "abc"}
