"""Read Kumo's SAM sources: the root template.yaml and the context stacks it nests.

The root keeps what every context shares (layer, REST and WebSocket APIs, authorizer, bus,
data bucket); each `AWS::Serverless::Application` in it names a context's source file under
stacks/. A context file holds only `Resources`, which refer to the root's and to other
contexts' resources by logical id, as if all were one template: `template()` is that one
template, and infra/stacks.py compiles it into the stacks that are deployed (ADR 19).

CloudFormation's short tags are read as the intrinsic functions they stand for
(`!Sub x` is `{"Fn::Sub": "x"}`, `!GetAtt A.B` is `{"Fn::GetAtt": ["A", "B"]}`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
APPLICATION = "AWS::Serverless::Application"
# The property that fixes a resource's physical name, for the types Kumo names itself.
NAME_PROPERTY = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::Events::EventBus": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Lambda::Function": "FunctionName",
}


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tag)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506
    return data


@cache
def root() -> dict[str, Any]:
    """template.yaml as written."""
    return load(ROOT / "template.yaml")


@cache
def stack_sources() -> dict[str, tuple[Path, dict[str, Any]]]:
    """Each nested stack's logical id in the root, with its source file and content."""
    stacks = {}
    for name, resource in root()["Resources"].items():
        if resource["Type"] == APPLICATION:
            path = ROOT / str(resource["Properties"]["Location"])
            stacks[name] = (path, load(path))
    return stacks


@cache
def owners() -> dict[str, str]:
    """The nested stack that owns each resource: "" for the root's own."""
    owned = {
        name: ""
        for name, resource in root()["Resources"].items()
        if resource["Type"] != APPLICATION
    }
    for stack, (path, source) in stack_sources().items():
        for name in source["Resources"]:
            if name in owned:
                raise ValueError(f"{path.name}: {name} is already defined elsewhere")
            owned[name] = stack
    return owned


@cache
def template() -> dict[str, Any]:
    """The root and every context stack as one SAM template (nested stacks left out)."""
    data = dict(root())
    merged = {
        name: resource
        for name, resource in data["Resources"].items()
        if resource["Type"] != APPLICATION
    }
    for _path, source in stack_sources().values():
        merged.update(source["Resources"])
    owners()  # refuses a logical id defined twice
    data["Resources"] = merged
    return data


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template()["Resources"].items()
        if resource["Type"] == kind
    }


def table_definitions(stage: str) -> list[dict[str, Any]]:
    """CreateTable arguments for every table, built from the template's key schema."""
    tables = []
    for resource in resources("AWS::DynamoDB::Table").values():
        props = resource["Properties"]
        name = props["TableName"]["Fn::Sub"].replace("${Stage}", stage)
        definition: dict[str, Any] = {
            "TableName": name,
            "BillingMode": props["BillingMode"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
        }
        if "GlobalSecondaryIndexes" in props:
            definition["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        tables.append(definition)
    return tables
