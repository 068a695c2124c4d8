"""Signed page cursors and limits (kumo.core.pagination)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from kumo.core.errors import BadRequest
from kumo.core.pagination import MAX_LIMIT, clamp_limit, decode_cursor, encode_cursor

CURSOR_KEYS = "kumo-test-cursor-keys"

LAST_KEY = {
    "pk": {"S": "USER#01HZCOREPAGINATIONUSER1"},
    "sk": {"S": "PROFILE"},
    "gsi1pk": {"S": "USERS"},
    "gsi1sk": {"S": "2026-01-02T03:04:05.678Z#01HZCOREPAGINATIONUSER1"},
}


def test_cursor_round_trips_last_evaluated_key():
    # Given a DynamoDB last evaluated key
    # When encoding and decoding it
    cursor = encode_cursor(LAST_KEY)

    # Then the same key comes back from an opaque, URL-safe string
    assert cursor is not None
    assert decode_cursor(cursor) == LAST_KEY
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_cursor_absent_for_last_page():
    # Given no last evaluated key
    # When encoding it
    # Then there is no next cursor, and no cursor decodes to no start key
    assert encode_cursor(None) is None
    assert decode_cursor(None) is None
    assert decode_cursor("") is None


@pytest.mark.parametrize(
    "cursor",
    ["not-a-cursor", "!!!.???", "eyJwayI6MX0.AAAAAAAAAAAAAAAA", "a.b.c"],
    ids=["no-separator", "not-base64", "unsigned", "extra-dots"],
)
def test_cursor_refuses_garbage(cursor):
    # Given a string the API never issued
    # When decoding it
    # Then it is a bad request about the cursor
    with pytest.raises(BadRequest) as raised:
        decode_cursor(cursor)
    assert raised.value.extra == {"field": "cursor"}


def test_cursor_refuses_rewritten_key_with_original_signature():
    # Given a genuine cursor whose key was rewritten
    _, signature = str(encode_cursor(LAST_KEY)).split(".")
    forged_key = LAST_KEY | {"pk": {"S": "USER#SOMEONE-ELSE"}}
    forged = base64.urlsafe_b64encode(json.dumps(forged_key).encode()).decode().rstrip("=")

    # When decoding it with the original signature
    # Then it is refused
    with pytest.raises(BadRequest, match="not one this API issued"):
        decode_cursor(f"{forged}.{signature}")


def test_cursor_refuses_non_ascii_signature():
    # Given a cursor whose signature part is not ASCII
    # When decoding it
    # Then it is a bad request like any other garbage, not a TypeError (a 500)
    with pytest.raises(BadRequest):
        decode_cursor("eyJwayI6MX0.\u00e9")


def test_cursor_refuses_genuine_cursor_of_another_list():
    # Given a cursor the API issued for the users list
    cursor = encode_cursor(LAST_KEY)

    # When decoding it for a list pinned to another partition
    # Then it is refused before it can reach DynamoDB as a start key
    with pytest.raises(BadRequest, match="another list"):
        decode_cursor(cursor, partition=("gsi1pk", "ORGS"))


def test_cursor_pinned_to_its_own_list_round_trips():
    # Given a cursor the API issued for the users list
    cursor = encode_cursor(LAST_KEY)

    # When decoding it for that same list
    # Then the key comes back
    assert decode_cursor(cursor, partition=("gsi1pk", "USERS")) == LAST_KEY


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1])
def test_clamp_limit_refuses_out_of_range(limit):
    # Given a limit outside 1..MAX_LIMIT
    # When clamping it
    # Then it is a bad request about the limit
    with pytest.raises(BadRequest):
        clamp_limit(limit)


def test_clamp_limit_defaults_when_absent():
    # Given no limit
    # When clamping it
    # Then the default page size applies
    assert clamp_limit(None) == 20


def test_cursor_refuses_a_key_from_another_list():
    # Given a genuine cursor issued for one organization's member list
    cursor = encode_cursor({"pk": {"S": "ORG#A"}, "sk": {"S": "MEMBER#1"}})
    # When it is presented for another organization's list
    # Then it is a bad request, not a start key DynamoDB would refuse with a 500
    with pytest.raises(BadRequest):
        decode_cursor(cursor, partition=("pk", "ORG#B"))
    assert decode_cursor(cursor, partition=("pk", "ORG#A")) == {
        "pk": {"S": "ORG#A"},
        "sk": {"S": "MEMBER#1"},
    }


def test_cursor_signed_before_a_rotation_still_decodes(fixed_signing_keys):
    # Given a cursor signed with the current key, and then a rotation
    cursor = encode_cursor(LAST_KEY)
    fixed_signing_keys[CURSOR_KEYS] = fixed_signing_keys[CURSOR_KEYS].rotated(
        now=1_800_000_000, keep_seconds=1500
    )

    # When decoding it
    # Then the retired key still vouches for it, while new cursors use the new key
    assert decode_cursor(cursor) == LAST_KEY
    assert encode_cursor(LAST_KEY) != cursor


def test_cursor_of_a_dropped_key_is_refused(fixed_signing_keys):
    # Given a cursor whose key was rotated out and then dropped
    cursor = encode_cursor(LAST_KEY)
    once = fixed_signing_keys[CURSOR_KEYS].rotated(now=1_800_000_000, keep_seconds=1500)
    fixed_signing_keys[CURSOR_KEYS] = once.rotated(now=1_800_002_000, keep_seconds=1500)

    # When decoding it
    # Then it is refused like any cursor the API did not issue
    with pytest.raises(BadRequest, match="not one this API issued"):
        decode_cursor(cursor)


def test_cursor_signed_with_the_token_key_is_refused(fixed_signing_keys):
    # Given a cursor signed with the access-token key instead of the cursor key
    body, _ = str(encode_cursor(LAST_KEY)).split(".")
    payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    token_key = fixed_signing_keys["kumo-test-jwt-keys"].current_key
    digest = hmac.new(token_key.encode(), payload, hashlib.sha256).digest()[:12]
    signature = base64.urlsafe_b64encode(digest).decode().rstrip("=")

    # When decoding it
    # Then it is refused: the two key sets are separate secrets
    with pytest.raises(BadRequest, match="not one this API issued"):
        decode_cursor(f"{body}.{signature}")
