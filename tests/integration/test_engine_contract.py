"""Contract with the local engine: what Kumo relies on, and the gaps it works around.

Each gap test pins a MiniStack difference from AWS that docs/adr/0004 describes. When one
starts failing, the engine has caught up: drop the workaround and the test together.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest


def test_every_table_has_ttl_after_deploy(aws: Any, endpoints: dict[str, Any]) -> None:
    dynamodb = aws("dynamodb")
    for name in ("identity", "orgs", "tasks"):
        table = f"kumo-{endpoints['stage']}-{name}"
        ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING"), table
        assert ttl["AttributeName"] == "expires_at"


@pytest.fixture
def scratch_stack(aws: Any) -> Iterator[tuple[str, str]]:
    name = f"kumo-contract-{uuid.uuid4().hex[:8]}"
    table = f"{name}-table"
    body = {
        "Resources": {
            "Table": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": table,
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                    "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
                },
            }
        }
    }
    cloudformation = aws("cloudformation")
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(body))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        if status.endswith("COMPLETE") or status.endswith("FAILED"):
            break
        time.sleep(0.2)
    yield name, table
    cloudformation.delete_stack(StackName=name)


def test_gap_template_ttl_is_ignored(aws: Any, scratch_stack: tuple[str, str]) -> None:
    _, table = scratch_stack
    ttl = aws("dynamodb").describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "DISABLED", (
        "MiniStack now applies TimeToLiveSpecification: remove the TTL step of "
        "infra/local/stack.py:apply_engine_workarounds and this test"
    )


def test_gap_gateway_responses_in_openapi_body_are_ignored(aws: Any) -> None:
    # SAM puts GatewayResponses into the API's OpenAPI body as this extension.
    body = {
        "openapi": "3.0.1",
        "info": {"title": "contract", "version": "1"},
        "paths": {},
        "x-amazon-apigateway-gateway-responses": {
            "UNAUTHORIZED": {
                "statusCode": 401,
                "responseTemplates": {"application/json": '{"kumo": true}'},
            }
        },
    }
    gateway = aws("apigateway")
    api_id = gateway.import_rest_api(body=json.dumps(body).encode())["id"]
    try:
        customized = gateway.get_gateway_responses(restApiId=api_id)["items"]
        unauthorized = [r for r in customized if r["responseType"] == "UNAUTHORIZED"]
        assert not unauthorized or unauthorized[0].get("defaultResponse", True), (
            "MiniStack now imports gateway responses: remove that step of "
            "infra/local/stack.py:apply_engine_workarounds and this test"
        )
    finally:
        gateway.delete_rest_api(restApiId=api_id)


def test_gap_websocket_authorizer_gets_a_default_identity_source(aws: Any) -> None:
    # Through CloudFormation, as Kumo's template declares it: no IdentitySource.
    name = f"kumo-contract-{uuid.uuid4().hex[:8]}"
    uri = (
        "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
        "arn:aws:lambda:us-east-1:000000000000:function:none/invocations"
    )
    body = {
        "Resources": {
            "Api": {
                "Type": "AWS::ApiGatewayV2::Api",
                "Properties": {
                    "Name": name,
                    "ProtocolType": "WEBSOCKET",
                    "RouteSelectionExpression": "$request.body.action",
                },
            },
            "Authorizer": {
                "Type": "AWS::ApiGatewayV2::Authorizer",
                "Properties": {
                    "ApiId": {"Ref": "Api"},
                    "Name": name,
                    "AuthorizerType": "REQUEST",
                    "AuthorizerUri": uri,
                },
            },
        }
    }
    cloudformation = aws("cloudformation")
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(body))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
            if stack["StackStatus"].endswith(("COMPLETE", "FAILED")):
                break
            time.sleep(0.2)
        resources = cloudformation.describe_stack_resources(StackName=name)["StackResources"]
        api_id = next(r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"] == "Api")
        (authorizer,) = aws("apigatewayv2").get_authorizers(ApiId=api_id)["Items"]
        assert authorizer.get("IdentitySource"), (
            "MiniStack now leaves a WebSocket authorizer without identity sources: remove the "
            "identity source step of infra/local/stack.py:apply_engine_workarounds and this test"
        )
    finally:
        cloudformation.delete_stack(StackName=name)


def test_kumo_websocket_authorizer_has_no_identity_source(
    aws: Any, endpoints: dict[str, Any]
) -> None:
    api_id = endpoints["websocket"].rstrip("/").split("/")[-2]
    (authorizer,) = aws("apigatewayv2").get_authorizers(ApiId=api_id)["Items"]
    assert authorizer["IdentitySource"] == []


def test_posting_to_an_unknown_connection_is_gone(aws: Any, endpoints: dict[str, Any]) -> None:
    # The fan-out drops subscriptions of connections API Gateway reports gone.
    management = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoints["websocket"].replace("ws://", "http://", 1),
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId="nobody0000000000", Data=b"{}")


def _wait_for(cloudformation: Any, name: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = str(cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"])
        if not status.endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def test_a_nested_stack_updates_when_a_resource_it_refers_to_is_unchanged(aws: Any) -> None:
    """What every context stack needs on each deploy (ADR 19): a child whose role did not
    change still reads the role's Arn. MiniStack 1.5.33 alone fails this update ("Requested
    attribute Arn does not exist in schema"); infra/local/engine.py mends it."""
    name = f"kumo-contract-{uuid.uuid4().hex[:8]}"
    child = {
        "Parameters": {"Note": {"Type": "String"}},
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "lambda.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    }
                },
            },
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "QueueName": f"{name}-queue",
                    "Tags": [
                        {"Key": "role", "Value": {"Fn::GetAtt": ["Role", "Arn"]}},
                        {"Key": "note", "Value": {"Ref": "Note"}},
                    ],
                },
            },
        },
        "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["Role", "Arn"]}}},
    }
    s3 = aws("s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="child.json", Body=json.dumps(child).encode())

    def parent(note: str) -> str:
        url = f"https://s3.amazonaws.com/{name}/child.json"
        return json.dumps(
            {
                "Resources": {
                    "Child": {
                        "Type": "AWS::CloudFormation::Stack",
                        "Properties": {"TemplateURL": url, "Parameters": {"Note": note}},
                    }
                },
                "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["Child", "Outputs.RoleArn"]}}},
            }
        )

    cloudformation = aws("cloudformation")
    cloudformation.create_stack(StackName=name, TemplateBody=parent("first"))
    try:
        assert _wait_for(cloudformation, name) == "CREATE_COMPLETE"
        cloudformation.update_stack(StackName=name, TemplateBody=parent("second"))
        assert _wait_for(cloudformation, name) == "UPDATE_COMPLETE"
        queue_url = aws("sqs").get_queue_url(QueueName=f"{name}-queue")["QueueUrl"]
        tags = aws("sqs").list_queue_tags(QueueUrl=queue_url)["Tags"]
        outputs = cloudformation.describe_stacks(StackName=name)["Stacks"][0]["Outputs"]
        assert tags["note"] == "second"
        assert tags["role"] == outputs[0]["OutputValue"]
        assert tags["role"].startswith("arn:aws:iam::")
    finally:
        cloudformation.delete_stack(StackName=name)
