"""Contract with the local engine's Secrets Manager and its CloudFormation secrets: what the
signing keys rely on (ADR 0021), and the differences from AWS it has.

A gap test pins a MiniStack difference; when one starts failing, the engine has caught up:
update the ADR and drop the test.
"""

from __future__ import annotations

import json
import string
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kumo.core.signing_keys import parse_key_set

from infra.keys import secret_name


def _wait(cloudformation: Any, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        stack: dict[str, Any] = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        done = stack["StackStatus"].endswith(("COMPLETE", "FAILED"))
        if done or time.monotonic() > deadline:
            return stack
        time.sleep(0.2)


def _secret_body(description: str) -> str:
    return json.dumps(
        {
            "Resources": {
                "Keys": {
                    "Type": "AWS::SecretsManager::Secret",
                    "Properties": {
                        "Description": description,
                        "GenerateSecretString": {
                            "SecretStringTemplate": '{"current": "initial"}',
                            "GenerateStringKey": "initial",
                            "PasswordLength": 200,
                            "ExcludePunctuation": True,
                        },
                    },
                }
            },
            "Outputs": {"Ref": {"Value": {"Ref": "Keys"}}},
        }
    )


@pytest.fixture
def secret_stack(aws: Any) -> Iterator[tuple[str, str]]:
    """A scratch stack holding one generated secret: (stack name, the secret's Ref)."""
    name = f"kumo-contract-secret-{uuid.uuid4().hex[:8]}"
    cloudformation = aws("cloudformation")
    cloudformation.create_stack(StackName=name, TemplateBody=_secret_body("first"))
    stack = _wait(cloudformation, name)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    yield name, outputs["Ref"]
    cloudformation.delete_stack(StackName=name)


def test_template_secrets_are_generated_in_the_key_set_shape(
    aws: Any, endpoints: dict[str, Any]
) -> None:
    # Kumo's own secrets, as the deploy created them (or as a rotation left them).
    client = aws("secretsmanager")
    sets = {}
    for which in ("jwt", "cursor"):
        stored = client.get_secret_value(SecretId=secret_name(endpoints["stage"], which))
        sets[which] = parse_key_set(stored["SecretString"])
    assert sets["jwt"].keys != sets["cursor"].keys


def test_generated_secret_is_readable_through_its_ref(
    aws: Any, secret_stack: tuple[str, str]
) -> None:
    _, ref = secret_stack
    stored = json.loads(aws("secretsmanager").get_secret_value(SecretId=ref)["SecretString"])
    assert stored["current"] == "initial"
    assert len(stored["initial"]) == 200


def test_put_secret_value_is_what_get_secret_value_reads(
    aws: Any, secret_stack: tuple[str, str]
) -> None:
    _, ref = secret_stack
    client = aws("secretsmanager")
    value = json.dumps({"current": "b", "keys": {"b": "k" * 64}})
    client.put_secret_value(SecretId=ref, SecretString=value)
    assert client.get_secret_value(SecretId=ref)["SecretString"] == value


def test_stack_update_keeps_a_value_put_since(aws: Any, secret_stack: tuple[str, str]) -> None:
    # A deploy after a rotation must not bring the generated key back.
    name, ref = secret_stack
    client = aws("secretsmanager")
    value = json.dumps({"current": "b", "keys": {"b": "k" * 64}})
    client.put_secret_value(SecretId=ref, SecretString=value)
    cloudformation = aws("cloudformation")
    cloudformation.update_stack(StackName=name, TemplateBody=_secret_body("second"))
    assert _wait(cloudformation, name)["StackStatus"] == "UPDATE_COMPLETE"
    assert client.get_secret_value(SecretId=ref)["SecretString"] == value


def test_gap_secret_ref_is_its_name_not_its_arn(aws: Any, secret_stack: tuple[str, str]) -> None:
    # AWS answers the ARN. Kumo passes the Ref as a SecretId, which takes either.
    _, ref = secret_stack
    assert not ref.startswith("arn:"), "MiniStack's Ref of a secret is now its ARN, as on AWS"


def test_gap_generated_secret_ignores_exclude_punctuation(
    aws: Any, secret_stack: tuple[str, str]
) -> None:
    # AWS honours ExcludePunctuation; the engine draws from letters, digits and punctuation.
    _, ref = secret_stack
    stored = json.loads(aws("secretsmanager").get_secret_value(SecretId=ref)["SecretString"])
    assert set(stored["initial"]) & set(string.punctuation), (
        "MiniStack now honours ExcludePunctuation: update docs/adr/0021 and drop this test"
    )
