"""The stack compiler (infra/stacks.py, ADR 19): what it writes deploys as one application."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from infra import stacks
from infra.openapi import api_routes
from infra.template import owners, stack_sources, template

PSEUDO = re.compile(r"^AWS::")
SUB_TOKEN = re.compile(r"\$\{([^!}][^}]*)\}")


@pytest.fixture(scope="module")
def compiled(compiled_stacks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return compiled_stacks


def _names_used(node: Any) -> Iterator[str]:
    """Every logical id or parameter a template fragment refers to."""
    if isinstance(node, list):
        for item in node:
            yield from _names_used(item)
    elif isinstance(node, dict):
        if set(node) == {"Ref"}:
            yield node["Ref"]
        elif set(node) == {"Fn::GetAtt"}:
            yield node["Fn::GetAtt"][0]
        elif set(node) == {"Fn::Sub"}:
            value = node["Fn::Sub"]
            text, local = (value, {}) if isinstance(value, str) else value
            for token in SUB_TOKEN.findall(text):
                if token not in local:
                    yield token.split(".")[0]
            yield from _names_used(local)
        else:
            for value in node.values():
                yield from _names_used(value)


def test_every_stack_stays_well_under_the_cloudformation_limit(
    compiled: dict[str, dict[str, Any]],
) -> None:
    counts = stacks.resource_counts(compiled)
    assert set(counts) == {"template.yaml"} | {
        f"stacks/{path.name}" for path, _ in stack_sources().values()
    }
    assert all(count <= stacks.LIMIT for count in counts.values()), counts


def test_each_stack_refers_only_to_what_it_defines_or_is_given(
    compiled: dict[str, dict[str, Any]],
) -> None:
    for path, body in compiled.items():
        known = set(body["Resources"]) | set(body.get("Parameters", {}))
        for name, resource in body["Resources"].items():
            unknown = {n for n in _names_used(resource) if not PSEUDO.match(n)} - known
            assert not unknown, f"{path}: {name} refers to {sorted(unknown)}"


def test_the_root_passes_each_child_exactly_the_parameters_it_declares(
    compiled: dict[str, dict[str, Any]],
) -> None:
    root = compiled["template.yaml"]["Resources"]
    for name, resource in root.items():
        if resource["Type"] != "AWS::Serverless::Application":
            continue
        props = resource["Properties"]
        child = compiled[props["Location"]]
        assert set(props.get("Parameters", {})) == set(child["Parameters"]), name


def test_every_source_resource_lands_in_the_stack_that_owns_it(
    compiled: dict[str, dict[str, Any]],
) -> None:
    locations = {stack: f"stacks/{path.name}" for stack, (path, _) in stack_sources().items()}
    for name, owner in owners().items():
        if template()["Resources"][name]["Type"] in stacks.KEPT_SAM:
            continue
        where = locations[owner] if owner else "template.yaml"
        assert name in compiled[where]["Resources"], f"{name} is not in {where}"


def test_functions_have_fixed_names_and_only_the_variables_their_code_reads(
    compiled: dict[str, dict[str, Any]],
) -> None:
    from infra.access import variables_used

    catalogue = template()["Globals"]["Function"]["Environment"]["Variables"]
    settings = stacks._settings()
    functions = {
        name: resource
        for body in compiled.values()
        for name, resource in body["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    assert len(functions) == len(
        [r for r in template()["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    )
    for name, resource in functions.items():
        props = resource["Properties"]
        source = template()["Resources"][name]["Properties"]
        short = stacks.function_name(source["CodeUri"])
        assert props["FunctionName"] == {"Fn::Sub": f"kumo-${{Stage}}-{short}"}
        # The longest stage name (16 characters) still fits Lambda's 64.
        assert len(f"kumo-{'s' * 16}-{short}") <= 64, short
        given = set(props["Environment"]["Variables"])
        own = set(source.get("Environment", {}).get("Variables", {}))
        reads = set(variables_used(stacks.ROOT / source["CodeUri"] / "app.py"))
        powertools = {key for key in catalogue if key not in settings}
        assert given <= reads | own | powertools, f"{name} gets {sorted(given - reads - own)}"


def test_the_rest_api_calls_each_route_s_function_by_its_fixed_arn(
    compiled: dict[str, dict[str, Any]],
) -> None:
    body = compiled["template.yaml"]["Resources"]["KumoApi"]["Properties"]["Body"]
    for route in api_routes():
        operation = body["paths"][route.path][route.method]
        uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        short = route.code_dir.name
        assert uri.endswith(f":function:kumo-${{Stage}}-{short}/invocations"), route


def test_each_context_grants_the_api_its_own_routes(compiled: dict[str, dict[str, Any]]) -> None:
    granted = set()
    for path, body in compiled.items():
        for resource in body["Resources"].values():
            if resource["Type"] != "AWS::Lambda::Permission":
                continue
            props = resource["Properties"]
            if props["Principal"] != "apigateway.amazonaws.com":
                continue
            function = props["FunctionName"].get("Ref")  # the authorizer's is an ARN
            source = props["SourceArn"]["Fn::Sub"]
            if function and isinstance(source, list):
                assert source[1]["__ApiId__"] == {"Ref": "KumoApi"}, path
                granted.add((function, source[0].split("${__Stage__}", 1)[1]))
    for route in api_routes():
        # SAM grants a path's parameters as wildcards: /devices/{id} is /devices/*.
        path = re.sub(r"\{[^}]+\}", "*", route.path)
        assert (route.function, f"/{route.method.upper()}{path}") in granted, route


def test_a_resource_another_stack_uses_needs_a_fixed_name() -> None:
    role = {"Type": "AWS::IAM::Role", "Properties": {}}
    with pytest.raises(stacks.CompileError, match="give it a fixed name"):
        stacks.fixed_name(role, "SomeRole", "Arn")
    queue = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": "kumo-${Stage}-q"}}}
    assert stacks.fixed_name(queue, "Queue", "Arn") == (
        "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:kumo-${Stage}-q"
    )


_IMPORT_EACH = """
import importlib, json, os, sys
failed = {}
for code_dir, variables in json.load(sys.stdin).items():
    for name in [m for m in sys.modules if m == "app" or m == "kumo" or m.startswith("kumo.")]:
        del sys.modules[name]
    os.environ.clear()
    os.environ.update(variables)
    sys.path[:1] = [code_dir]
    try:
        importlib.import_module("app")
    except Exception as error:
        failed[code_dir] = repr(error)
print(json.dumps(failed))
"""


def test_each_function_imports_with_only_its_environment(
    compiled: dict[str, dict[str, Any]],
) -> None:
    """What Lambda does at init: import the handler with only the function's variables. A
    setting read at import (a model's Meta names its table) that the environment lacks fails
    here, not on the first request."""
    import json
    import subprocess
    import sys

    from infra.environment import environment_for

    values = environment_for("x", account="123456789012", websocket_url="https://ws")
    plan = {}
    for body in compiled.values():
        for name, resource in body["Resources"].items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            code = stacks.ROOT / template()["Resources"][name]["Properties"]["CodeUri"]
            given = resource["Properties"]["Environment"]["Variables"]
            plan[str(code)] = {
                "AWS_DEFAULT_REGION": "us-east-1",
                **{key: values.get(key, "x") for key in given},
            }
    layer = str(stacks.ROOT / "layers" / "common")
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _IMPORT_EACH],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        env={"PYTHONPATH": layer, "PATH": "/usr/bin:/bin"},
        check=True,
        timeout=300,
    )
    assert json.loads(result.stdout.splitlines()[-1]) == {}


def test_local_timeouts_raise_functions_but_not_past_their_queue_s_visibility() -> None:
    # Given an API function (10 s), a queue consumer whose queue hides messages 60 s, and a
    # long job (300 s)
    resources: dict[str, Any] = {
        "Api": {"Type": "AWS::Lambda::Function", "Properties": {"Timeout": 10}},
        "Worker": {"Type": "AWS::Lambda::Function", "Properties": {"Timeout": 30}},
        "Job": {"Type": "AWS::Lambda::Function", "Properties": {"Timeout": 300}},
        "Work": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 60}},
        "WorkerQueue": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "EventSourceArn": {"Fn::GetAtt": ["Work", "Arn"]},
                "FunctionName": {"Ref": "Worker"},
            },
        },
    }

    # When they are compiled for the local engine
    stacks.local_timeouts(resources)

    # Then each runs as long as the local stack allows, a consumer no longer than its queue
    # hides a message, and none less than its template says
    timeouts = {
        name: resource["Properties"]["Timeout"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    assert timeouts == {"Api": stacks.LOCAL_TIMEOUT_SECONDS, "Worker": 60, "Job": 300}


def test_the_aws_compile_keeps_the_template_s_timeouts(
    compiled: dict[str, dict[str, Any]],
) -> None:
    # Given the stacks compiled for AWS (no `local`)
    functions = [
        resource
        for body in compiled.values()
        for resource in body["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
    ]

    # Then the login function keeps the template's 10 s
    login = next(f for f in functions if "login" in str(f["Properties"]["FunctionName"]))
    assert login["Properties"]["Timeout"] == 10
