"""Who may read the signing keys, read from template.yaml (ADR 0021): the JWT key set only by
the functions that mint or verify access tokens, the cursor key set only by those that page,
and no key in any environment."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.template import ROOT, resources, template

FUNCTIONS = resources("AWS::Serverless::Function")
# The authorizer verifies tokens (REST and WebSocket handshakes); login and refresh mint them.
TOKEN_FUNCTIONS = {"AuthorizerFunction", "LoginFunction", "RefreshFunction"}
# Pages inside a job rather than answering a page: it reads the readings route's cursors.
INTERNAL_PAGING = {"BuildExportFunction"}


def _environment(resource: dict[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = resource["Properties"].get("Environment", {}).get("Variables", {})
    return variables


def _reads_secret(resource: dict[str, Any], secret: str) -> bool:
    policy = {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": secret}}}
    return policy in resource["Properties"].get("Policies", [])


def _handler_source(resource: dict[str, Any]) -> str:
    return (ROOT / str(resource["Properties"]["CodeUri"]) / "app.py").read_text()


@pytest.mark.parametrize(
    ("secret", "variable"),
    [("JwtSigningKeys", "JWT_KEY_SECRET_ID"), ("CursorSigningKeys", "CURSOR_KEY_SECRET_ID")],
)
def test_functions_granted_a_key_set_are_those_given_its_name(secret, variable):
    # Given the functions of the template
    # Then the ones whose environment names a key set are exactly the ones allowed to read it
    named = {name for name, fn in FUNCTIONS.items() if variable in _environment(fn)}
    granted = {name for name, fn in FUNCTIONS.items() if _reads_secret(fn, secret)}
    assert named == granted
    assert all(_environment(FUNCTIONS[name])[variable] == {"Ref": secret} for name in named)


def test_only_token_functions_read_the_jwt_keys():
    # Given the functions allowed to read the JWT key set
    granted = {name for name, fn in FUNCTIONS.items() if _reads_secret(fn, "JwtSigningKeys")}

    # Then they are the authorizer, login and refresh, nothing else
    assert granted == TOKEN_FUNCTIONS


def test_every_paging_function_reads_the_cursor_keys():
    # Given the functions whose handler answers a next cursor, and the job that pages
    paging = {name for name, fn in FUNCTIONS.items() if "next_cursor" in _handler_source(fn)}

    # Then they, and only they, may read the cursor key set
    granted = {name for name, fn in FUNCTIONS.items() if _reads_secret(fn, "CursorSigningKeys")}
    assert granted == paging | INTERNAL_PAGING


def test_no_signing_key_is_a_parameter_or_a_variable():
    # Given the template
    data = template()
    everything = json.dumps(data)

    # Then no parameter or environment carries a key: only the secrets hold them
    assert not [name for name in data["Parameters"] if "Secret" in name]
    assert "JWT_SECRET" not in everything
    for name in ("JwtSigningKeys", "CursorSigningKeys"):
        secret = data["Resources"][name]
        assert secret["Type"] == "AWS::SecretsManager::Secret"
        assert "SecretString" not in secret["Properties"]
        assert "GenerateSecretString" in secret["Properties"]
