"""Signing key sets in Secrets Manager: reading and caching (kumo.core.signing_keys), rotation
(infra.keys), and access tokens across a rotation (kumo.identity.tokens)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import jwt
import pytest
from kumo.core import signing_keys
from kumo.core.config import ConfigurationError
from kumo.core.errors import Unauthorized
from kumo.identity import tokens

from infra import keys as rotation
from tests.support.template import ROOT

JWT_KEYS = "kumo-test-jwt-keys"
NOW = 1_800_000_000.0
KEEP = 1500


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def _issue() -> str:
    return tokens.issue_access_token(
        user_id="01HZKEYSUSER", email="k@example.com", role="user", session_epoch=0
    )


def _rotate() -> signing_keys.KeySet:
    rotated = rotation.rotate(boto3.client("secretsmanager"), JWT_KEYS, keep_seconds=KEEP)
    signing_keys.forget()  # as a container does once its cache has expired
    return rotated


# --- the key set ------------------------------------------------------------------------


def test_parse_key_set_reads_the_shape_the_template_generates():
    # Given the value GenerateSecretString writes
    raw = '{"current": "initial", "initial": "' + "k" * 64 + '"}'

    # When parsing it
    parsed = signing_keys.parse_key_set(raw)

    # Then it is a one-key set whose current key is the generated one
    assert (parsed.current, dict(parsed.keys)) == ("initial", {"initial": "k" * 64})


@pytest.mark.parametrize(
    "raw",
    [
        '{"keys": {"a": "' + "k" * 40 + '"}}',
        '{"current": "b", "keys": {"a": "' + "k" * 40 + '"}}',
        '{"current": "a", "keys": {"a": "short"}}',
        "[]",
    ],
    ids=["no-current", "current-without-key", "short-key", "not-an-object"],
)
def test_parse_key_set_refuses_unusable_sets(raw):
    # Given a secret value that cannot sign safely
    # When parsing it
    # Then it fails loudly rather than sign with something weak
    with pytest.raises(ConfigurationError):
        signing_keys.parse_key_set(raw)


def test_rotated_adds_current_key_and_keeps_the_previous_one():
    # Given a one-key set
    first = signing_keys.parse_key_set({"current": "initial", "initial": "k" * 64})

    # When rotating it
    second = first.rotated(now=NOW, keep_seconds=KEEP)

    # Then a new random key is current and the old one is kept, retired now
    assert second.current != "initial"
    assert len(second.current_key) == 64 and second.current_key != "k" * 64
    assert second.key("initial") == "k" * 64
    assert dict(second.retired) == {"initial": NOW}


def test_rotated_drops_keys_retired_longer_than_the_token_lifetime():
    # Given a set rotated once
    once = signing_keys.parse_key_set({"current": "initial", "initial": "k" * 64}).rotated(
        now=NOW, keep_seconds=KEEP
    )

    # When rotating again, once before and once after the first key's tokens have expired
    soon = once.rotated(now=NOW + KEEP - 1, keep_seconds=KEEP)
    later = once.rotated(now=NOW + KEEP + 1, keep_seconds=KEEP)

    # Then the first key is kept while its tokens may live, and dropped after
    assert set(soon.keys) == {"initial", once.current, soon.current}
    assert set(later.keys) == {once.current, later.current}
    assert "initial" not in later.retired


def test_rotated_set_survives_its_own_json():
    # Given a rotated set
    rotated = signing_keys.parse_key_set({"current": "a", "a": "k" * 64}).rotated(
        now=NOW, keep_seconds=KEEP
    )

    # When writing and reading it back
    # Then nothing is lost
    assert signing_keys.parse_key_set(rotated.to_json()) == rotated


def test_default_keep_covers_token_lifetime_and_cache():
    # Given the defaults: 900 s access tokens, a 300 s key cache
    # Then a retired key is kept longer than both together
    assert rotation.default_keep_seconds() > 900 + 300


# --- Secrets Manager (moto) ---------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_load_reads_the_secret_once_per_cache_period():
    # Given the key set read once
    first = signing_keys.load(JWT_KEYS)

    # When the secret changes and the set is read again within the cache period
    boto3.client("secretsmanager").put_secret_value(
        SecretId=JWT_KEYS, SecretString=json.dumps({"current": "x", "x": "y" * 40})
    )

    # Then the cached set answers; after the cache is gone, the new one does
    assert signing_keys.load(JWT_KEYS) == first
    signing_keys.forget()
    assert signing_keys.load(JWT_KEYS).current == "x"


@pytest.mark.usefixtures("aws")
def test_load_rereads_for_an_unknown_kid_at_most_once_per_interval():
    # Given a cached set, then a rotation this container has not read
    signing_keys.load(JWT_KEYS)
    rotated = rotation.rotate(boto3.client("secretsmanager"), JWT_KEYS, keep_seconds=KEEP)

    # When a kid the cached set lacks is met
    fresh = signing_keys.load(JWT_KEYS, unknown_kid=rotated.current)

    # Then the secret is read again; a second unknown kid soon after reads nothing
    assert fresh.current == rotated.current
    boto3.client("secretsmanager").put_secret_value(
        SecretId=JWT_KEYS, SecretString=json.dumps({"current": "x", "x": "y" * 40})
    )
    assert signing_keys.load(JWT_KEYS, unknown_kid="forged").current == rotated.current


@pytest.mark.usefixtures("aws")
def test_rotate_keeps_the_secret_readable_by_the_functions():
    # Given the generated key set
    # When rotating it with the command's function
    rotated = _rotate()

    # Then the secret holds the new set, in the canonical shape
    stored = boto3.client("secretsmanager").get_secret_value(SecretId=JWT_KEYS)["SecretString"]
    assert json.loads(stored)["current"] == rotated.current
    assert set(json.loads(stored)["keys"]) == {"initial", rotated.current}


@pytest.mark.usefixtures("aws")
def test_rotate_command_rotates_both_sets(monkeypatch, capsys):
    # Given the command aimed at the moto account's stage
    monkeypatch.setattr(rotation, "secrets_client", lambda *_, **__: boto3.client("secretsmanager"))

    # When running it
    assert rotation.main(["rotate", "--stage", "test"]) == 0

    # Then both secrets have a new current kid, and only kids were printed
    client = boto3.client("secretsmanager")
    for name in ("kumo-test-jwt-keys", "kumo-test-cursor-keys"):
        stored = json.loads(client.get_secret_value(SecretId=name)["SecretString"])
        assert stored["current"] != "initial"
        assert stored["keys"][stored["current"]] not in capsys.readouterr().out


# --- tokens across a rotation --------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_access_token_carries_the_current_kid():
    # Given the generated key set
    # When issuing an access token
    token = _issue()

    # Then its header names the current key
    assert _kid(token) == "initial"


@pytest.mark.usefixtures("aws")
def test_token_issued_before_rotation_still_verifies():
    # Given a token signed with the key that is then rotated out
    token = _issue()
    _rotate()

    # When verifying it
    # Then the retired key still vouches for it
    assert tokens.decode_access_token(token)["sub"] == "01HZKEYSUSER"


@pytest.mark.usefixtures("aws")
def test_token_issued_after_rotation_has_the_new_kid():
    # Given a rotation
    rotated = _rotate()

    # When issuing a token
    token = _issue()

    # Then it is signed with the new key and verifies
    assert _kid(token) == rotated.current
    assert tokens.decode_access_token(token)["sub"] == "01HZKEYSUSER"


@pytest.mark.usefixtures("aws")
def test_token_of_a_newer_key_verifies_in_a_container_with_a_stale_cache():
    # Given a verifier that cached the set before a rotation
    signing_keys.load(JWT_KEYS)
    rotated = rotation.rotate(boto3.client("secretsmanager"), JWT_KEYS, keep_seconds=KEEP)
    claims = jwt.decode(_issue(), options={"verify_signature": False})
    token = jwt.encode(
        claims, rotated.current_key, algorithm="HS256", headers={"kid": rotated.current}
    )

    # When it meets a token signed with the new key
    # Then it reads the set again instead of refusing
    assert tokens.decode_access_token(token)["sub"] == "01HZKEYSUSER"


@pytest.mark.usefixtures("aws")
def test_token_of_a_dropped_key_is_refused():
    # Given a token whose key was rotated out and later dropped
    token = _issue()
    client = boto3.client("secretsmanager")
    rotation.rotate(client, JWT_KEYS, keep_seconds=KEEP, now=NOW)
    rotation.rotate(client, JWT_KEYS, keep_seconds=KEEP, now=NOW + KEEP + 1)
    signing_keys.forget()

    # When verifying it
    # Then it is refused like any forged token
    with pytest.raises(Unauthorized):
        tokens.decode_access_token(token)


# --- cold start ---------------------------------------------------------------------------

_IMPORT_AND_LIST = """\
import importlib, sys
sys.path[:0] = sys.argv[1:]
importlib.import_module("app")
print(",".join(sorted(m for m in sys.modules if m.startswith("aws_lambda_powertools.utilities"))))
"""


@pytest.mark.parametrize("function", ["identity/authorizer", "orgs/list_members"])
def test_handler_import_does_not_load_powertools_parameters(function):
    # Given a handler that checks tokens or cursors, imported as Lambda would
    from infra.openapi import DUMMY_ENVIRONMENT

    code = ROOT / "functions" / function
    env = {"PATH": os.environ.get("PATH", ""), **DUMMY_ENVIRONMENT}
    loaded = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _IMPORT_AND_LIST, str(code), str(ROOT / "layers" / "common")],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    # Then Parameters (and the boto3 it brings) waits for the first key read
    assert "aws_lambda_powertools.utilities.parameters" not in loaded
