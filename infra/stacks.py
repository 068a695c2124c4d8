"""Compile the SAM sources into what is deployed: the root stack and a nested stack per context.

    python -m infra.stacks              # writes .aws-sam/kumo/template.yaml and stacks/*.yaml
    python -m infra.stacks --count      # resources per stack; exits 1 if one is above 250

Why compile (ADR 19): CloudFormation allows 500 resources a stack, so each context is a nested
stack; the local engine applies the SAM transform to top-level stacks only, so a nested stack
must be plain CloudFormation. The sources stay SAM and read as one application (infra.template):

1. `infra.template.template()` is the root and every context as one SAM template. Each function
   gets a fixed name, `kumo-<stage>-<directory>`, and an environment of only the variables its
   code reads (`infra.access.variables_used`: at import, and in the code its handler can
   call); the root's `Globals` environment is the catalogue of values they are taken from.
2. The SAM translator, the same one AWS and the engine run, turns it into CloudFormation; the
   REST API's body then gets an `ANY` method per path that answers 405 (infra.unsupported_methods).
3. Each resource it made goes to the stack that owns the SAM resource it came from.
4. A reference that crosses stacks becomes a parameter of the child when it points into the
   root, and the resource's fixed name or ARN when it points into another context (no stack
   waits for a sibling, and no two stacks depend on each other). The REST API's OpenAPI body
   therefore calls functions by their fixed ARNs, and each context grants the API its own
   invoke permissions, scoped to the API id it receives.
5. The root keeps the layer and the nested stacks as SAM resources: `sam build` builds the
   layer with its Makefile and packages every child.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from infra import template as sources
from infra import unsupported_methods

ROOT = sources.ROOT
OUT = ROOT / ".aws-sam" / "kumo"
SAM_PYTHON = ROOT / ".local" / "sam" / "bin" / "python"
LAYER = ROOT / "layers" / "common"
FUNCTIONS = ROOT / "functions"
LIMIT = 250
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
CODE_BUCKET = "kumo-build-placeholder"
# What stays SAM in the compiled root (ADR 19): the transform that AWS and the engine apply
# there builds the layer version and nests the children.
KEPT_SAM = ("AWS::Serverless::LayerVersion", "AWS::Serverless::Application")

# The SAM translator, run with the SAM CLI's own Python (the project venv does not carry it).
# No managed-policy lookups: the same loader the local engine uses.
_TRANSLATE = """
import json, sys
from types import SimpleNamespace
from samtranslator.translator.transform import transform
template = json.load(sys.stdin)
json.dump(transform(template, {}, SimpleNamespace(load=lambda: {})), sys.stdout)
"""


class CompileError(RuntimeError):
    """The sources cannot be compiled as they are; the message says what to change."""


# --- 1. the application as one SAM template ----------------------------------------------


def function_name(code_uri: str) -> str:
    """`functions/tasks/mailer/` is deployed as `kumo-<stage>-mailer`."""
    return Path(code_uri).name


def _settings() -> dict[str, Any]:
    if str(LAYER) not in sys.path:
        sys.path.insert(0, str(LAYER))
    from kumo.core.config import variables

    return {env.variable: env for env in variables().values()}


def environment_of(
    name: str,
    props: dict[str, Any],
    catalogue: dict[str, Any],
    settings: dict[str, Any],
    granted: set[str],
) -> dict[str, Any]:
    """The variables a function gets: the settings its code reads, its own, and the catalogue's
    variables that are not Kumo settings (Powertools' own, which every function reads).

    A variable that the template gives functions one by one (`granted`: a signing key's
    secret id goes with the IAM grant on the secret) is never taken from the catalogue; a
    function that reads one without a default must be given it in its own Environment."""
    from infra.access import variables_used

    own: dict[str, Any] = props.get("Environment", {}).get("Variables", {})
    variables = {key: value for key, value in catalogue.items() if key not in settings}
    handler = ROOT / str(props["CodeUri"]) / "app.py"
    for variable in variables_used(handler):
        if variable in own:
            continue
        if variable in granted and settings[variable].default is None:
            raise CompileError(
                f"{name} reads {variable}: give it in the function's own Environment, "
                "with the grant that goes with it"
            )
        if variable in granted:
            continue  # its default serves a function the template does not give it to
        if variable in catalogue:
            variables[variable] = catalogue[variable]
        elif settings[variable].default is None:
            raise CompileError(f"{name} reads {variable}, which the template does not define")
    variables.update(own)
    return dict(sorted(variables.items()))


def application() -> dict[str, Any]:
    """The SAM template to translate: every resource but the ones that stay SAM in the root,
    which the others see as parameters of the same name."""
    data = copy.deepcopy(sources.template())
    resources: dict[str, Any] = data["Resources"]
    function_globals = data.get("Globals", {}).get("Function", {})
    catalogue = function_globals.pop("Environment", {}).get("Variables", {})
    settings = _settings()
    granted = {
        variable
        for resource in resources.values()
        if resource["Type"] == "AWS::Serverless::Function"
        for variable in resource["Properties"].get("Environment", {}).get("Variables", {})
    }
    names: dict[str, str] = {}
    for name, resource in list(resources.items()):
        if resource["Type"] in KEPT_SAM:
            del resources[name]
            data["Parameters"][name] = {"Type": "String"}
            continue
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        short = function_name(props["CodeUri"])
        if short in names:
            raise CompileError(f"{name} and {names[short]} would both be named {short}")
        names[short] = name
        props.setdefault("FunctionName", {"Fn::Sub": f"kumo-${{Stage}}-{short}"})
        environment = environment_of(name, props, catalogue, settings, granted)
        props["Environment"] = {"Variables": environment}
        # The translator wants code in S3; the real path is put back after it (see _code).
        props["CodeUri"] = {"Bucket": CODE_BUCKET, "Key": props["CodeUri"]}
    return data


# --- 2. translation ----------------------------------------------------------------------


def translate(template: dict[str, Any]) -> dict[str, Any]:
    if not SAM_PYTHON.exists():
        raise CompileError("the SAM CLI is not installed; `make tools` installs it")
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    result = subprocess.run(  # noqa: S603 (the SAM CLI venv's own interpreter)
        [str(SAM_PYTHON), "-c", _TRANSLATE],
        input=json.dumps(template),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise CompileError(f"the SAM translator refused the template:\n{result.stderr[-4000:]}")
    translated: dict[str, Any] = json.loads(result.stdout)
    return translated


# --- 2b. the local engine's timeouts ----------------------------------------------------------

# Locally a function may run this long whatever its template says (ADR 25): on a busy laptop a
# first call (lazy imports, first clients, a password hash) took more than the 10 s that AWS
# is given, and the engine answered 502. AWS keeps the template's timeouts.
LOCAL_TIMEOUT_SECONDS = 120


def local_timeouts(resources: dict[str, Any]) -> None:
    """Raise every function's Timeout to LOCAL_TIMEOUT_SECONDS, in place, but not above the
    visibility timeout of a queue it consumes: a message must stay hidden while it is handled
    (AWS refuses such a mapping, and the engine would deliver the message twice)."""
    caps: dict[str, int] = {}
    for resource in resources.values():
        if resource["Type"] != "AWS::Lambda::EventSourceMapping":
            continue
        props = resource["Properties"]
        source, function = props.get("EventSourceArn"), props.get("FunctionName")
        if not (isinstance(source, dict) and "Fn::GetAtt" in source):
            continue
        queue = resources.get(source["Fn::GetAtt"][0], {})
        if queue.get("Type") == "AWS::SQS::Queue" and isinstance(function, dict):
            visibility = int(queue.get("Properties", {}).get("VisibilityTimeout", 30))
            name = function["Ref"]
            caps[name] = min(caps.get(name, LOCAL_TIMEOUT_SECONDS), visibility)
    for name, resource in resources.items():
        if resource["Type"] == "AWS::Lambda::Function":
            props = resource["Properties"]
            limit = min(LOCAL_TIMEOUT_SECONDS, caps.get(name, LOCAL_TIMEOUT_SECONDS))
            props["Timeout"] = max(int(props.get("Timeout", 3)), limit)


# --- 3. which stack owns what --------------------------------------------------------------


def partition(translated: dict[str, Any]) -> dict[str, str]:
    """The owning stack ("" for the root) of every translated resource: that of its SAM
    resource, whose logical id begins the ids of all the resources SAM makes from it."""
    owners = sources.owners()
    sam = sorted(
        (
            name
            for name, resource in sources.template()["Resources"].items()
            if resource["Type"].startswith("AWS::Serverless::")
        ),
        key=len,
        reverse=True,
    )
    placed: dict[str, str] = {}
    for name in translated["Resources"]:
        if name in owners:
            placed[name] = owners[name]
            continue
        origin = next((source for source in sam if name.startswith(source)), None)
        if origin is None:
            raise CompileError(f"the translator made {name}, which no source resource explains")
        placed[name] = owners[origin]
    return placed


# --- 4. references across stacks -------------------------------------------------------------

_SUB_TOKEN = re.compile(r"\$\{([^!}][^}]*)\}")


def fixed_name(resource: dict[str, Any], name: str, attribute: str | None) -> str:
    """A `Fn::Sub` string for a resource's name or ARN, known without the stack that owns it."""
    kind = resource["Type"]
    props = resource.get("Properties", {})
    key = sources.NAME_PROPERTY.get(kind)
    value = props.get(key) if key else None
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        value = value["Fn::Sub"]
    if not isinstance(value, str):
        raise CompileError(
            f"{name} ({kind}) is used by another stack: give it a fixed name, or reach it "
            "through its context's service or events"
        )
    region = "${AWS::Partition}:%s:${AWS::Region}:${AWS::AccountId}"
    queue_url = f"https://sqs.${{AWS::Region}}.${{AWS::URLSuffix}}/${{AWS::AccountId}}/{value}"
    forms = {
        ("AWS::DynamoDB::Table", None): value,
        ("AWS::DynamoDB::Table", "Arn"): f"arn:{region % 'dynamodb'}:table/{value}",
        ("AWS::SQS::Queue", None): queue_url,
        ("AWS::SQS::Queue", "QueueUrl"): queue_url,
        ("AWS::SQS::Queue", "QueueName"): value,
        ("AWS::SQS::Queue", "Arn"): f"arn:{region % 'sqs'}:{value}",
        ("AWS::Lambda::Function", None): value,
        ("AWS::Lambda::Function", "Arn"): f"arn:{region % 'lambda'}:function:{value}",
        ("AWS::S3::Bucket", None): value,
        ("AWS::S3::Bucket", "Arn"): f"arn:${{AWS::Partition}}:s3:::{value}",
    }
    if (kind, attribute) not in forms:
        raise CompileError(f"{name}.{attribute} is used by another stack and has no fixed form")
    return forms[(kind, attribute)]


class Linker:
    """Rewrites one stack's references to what is outside it."""

    def __init__(self, stack: str, translated: dict[str, Any], placed: dict[str, str]) -> None:
        self.stack = stack
        self.resources: dict[str, Any] = translated["Resources"]
        self.placed = placed
        self.root_names = set(translated.get("Parameters", {}))
        self.parameters: dict[str, Any] = {}  # child parameter -> its value in the root
        self.conditions: set[str] = set()

    def _outside(self, name: str, attribute: str | None) -> tuple[str, Any] | None:
        """None when `name` is visible here as it is; else ("param", name) or ("fixed", sub)."""
        if name.startswith("AWS::"):
            return None
        if self.stack and attribute is None and name in self.parameters:
            return None  # already a parameter here
        if name in self.root_names:
            if self.stack:
                self.parameters[name] = {"Ref": name}
            return None
        owner = self.placed.get(name)
        if owner is None:
            raise CompileError(f"{self.stack or 'root'} refers to {name}, which nothing defines")
        if owner == self.stack:
            return None
        if owner == "" and self.stack:
            if attribute is None:
                self.parameters[name] = {"Ref": name}
                return ("param", name)
            parameter = name + attribute.replace(".", "")
            self.parameters[parameter] = {"Fn::GetAtt": [name, attribute]}
            return ("param", parameter)
        return ("fixed", fixed_name(self.resources[name], name, attribute))

    def _sub(self, text: str, local: set[str]) -> str:
        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token in local:
                return match.group(0)
            name, _, attribute = token.partition(".")
            found = self._outside(name, attribute or None)
            if found is None:
                return match.group(0)
            kind, value = found
            # A fixed name is itself a Sub string: its ${Stage} is linked on the next pass.
            return "${" + value + "}" if kind == "param" else str(value)

        while True:
            linked = _SUB_TOKEN.sub(replace, text)
            if linked == text:
                return linked
            text = linked

    def link(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.link(item) for item in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"} and isinstance(node["Ref"], str):
            found = self._outside(node["Ref"], None)
            return node if found is None else self._value(found)
        if set(node) == {"Fn::GetAtt"}:
            name, attribute = node["Fn::GetAtt"]
            found = self._outside(name, attribute)
            return node if found is None else self._value(found)
        if set(node) == {"Fn::Sub"}:
            value = node["Fn::Sub"]
            if isinstance(value, str):
                return {"Fn::Sub": self._sub(value, set())}
            text, mapping = value
            return {"Fn::Sub": [self._sub(text, set(mapping)), self.link(mapping)]}
        if set(node) == {"Fn::If"}:
            self.conditions.add(node["Fn::If"][0])
            return {"Fn::If": [node["Fn::If"][0], *self.link(node["Fn::If"][1:])]}
        if set(node) == {"Condition"} and isinstance(node["Condition"], str):
            self.conditions.add(node["Condition"])
            return node
        return {key: self.link(value) for key, value in node.items()}

    @staticmethod
    def _value(found: tuple[str, Any]) -> dict[str, Any]:
        kind, value = found
        return {"Ref": value} if kind == "param" else {"Fn::Sub": value}

    def resource(self, resource: dict[str, Any]) -> dict[str, Any]:
        linked: dict[str, Any] = self.link(
            {key: value for key, value in resource.items() if key != "DependsOn"}
        )
        if "Condition" in resource:
            self.conditions.add(resource["Condition"])
        depends = resource.get("DependsOn")
        if depends:
            names = [depends] if isinstance(depends, str) else depends
            # Within a stack only; across stacks the parameters already order the creation.
            kept = [name for name in names if self.placed.get(name) == self.stack]
            if kept:
                linked["DependsOn"] = kept
        return linked


# --- alarms ------------------------------------------------------------------------------------


def alarms(resources: dict[str, Any]) -> dict[str, Any]:
    """An alarm on every dead-letter queue's depth and on every function's errors, sent to the
    root's AlarmTopic: written here so that no queue or function can be added without one."""
    made: dict[str, Any] = {}

    def alarm(
        name: str, description: str, namespace: str, metric: str, dimension: dict[str, Any]
    ) -> Any:
        return {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmName": {"Fn::Sub": name},
                "AlarmDescription": description,
                "Namespace": namespace,
                "MetricName": metric,
                "Dimensions": [dimension],
                "Statistic": "Maximum" if namespace == "AWS/SQS" else "Sum",
                "Period": 300,
                "EvaluationPeriods": 1,
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
                "AlarmActions": [{"Ref": "AlarmTopic"}],
            },
        }

    for name, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::SQS::Queue" and name.endswith("DeadLetterQueue"):
            made[f"{name}DepthAlarm"] = alarm(
                f"{props['QueueName']['Fn::Sub']}-depth",
                "Messages are waiting in a dead-letter queue: see docs/operations.md",
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                {"Name": "QueueName", "Value": props["QueueName"]},
            )
        elif resource["Type"] == "AWS::Lambda::Function":
            made[f"{name}ErrorsAlarm"] = alarm(
                f"{props['FunctionName']['Fn::Sub']}-errors",
                "The function failed (an error or a timeout): see its log group",
                "AWS/Lambda",
                "Errors",
                {"Name": "FunctionName", "Value": props["FunctionName"]},
            )
    return made


def _code(resource: dict[str, Any], relative_to: Path) -> None:
    """Put a function's local code path back where the translator wanted an S3 object."""
    code = resource.get("Properties", {}).get("Code")
    if isinstance(code, dict) and code.get("S3Bucket") == CODE_BUCKET:
        resource["Properties"]["Code"] = os.path.relpath(ROOT / code["S3Key"], relative_to) + "/"


# --- 5. the stacks ---------------------------------------------------------------------------


def compile_stacks(out: Path = OUT, *, local: bool = False) -> dict[str, dict[str, Any]]:
    """The compiled templates by path relative to `out` ("template.yaml", "stacks/x.yaml");
    `local`: for the local engine, with its timeouts (local_timeouts)."""
    source_root = copy.deepcopy(sources.root())
    translated = translate(application())
    for resource in translated["Resources"].values():
        if resource["Type"] == "AWS::ApiGateway::RestApi":
            unsupported_methods.add_to_body(resource["Properties"]["Body"])
    if local:
        local_timeouts(translated["Resources"])
    placed = partition(translated)
    children = sources.stack_sources()
    conditions = source_root.get("Conditions", {})
    compiled: dict[str, dict[str, Any]] = {}

    for stack, (path, _source) in children.items():
        linker = Linker(stack, translated, placed)
        resources = {}
        for name, resource in translated["Resources"].items():
            if placed[name] == stack:
                resources[name] = linker.resource(resource)
                _code(resources[name], out / "stacks")
        resources.update(linker.link(alarms(resources)))
        used = _conditions(linker, conditions)
        template: dict[str, Any] = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": f"Kumo {stack}: {path.relative_to(ROOT)} compiled by infra/stacks.py",
            "Parameters": {name: {"Type": "String"} for name in sorted(linker.parameters)},
        }
        if used:
            template["Conditions"] = used
        template["Resources"] = resources
        compiled[f"stacks/{path.name}"] = template
        application_props = source_root["Resources"][stack]["Properties"]
        application_props["Location"] = f"stacks/{path.name}"
        if linker.parameters:
            application_props["Parameters"] = dict(sorted(linker.parameters.items()))

    linker = Linker("", translated, placed)
    resources = {}
    for name, resource in source_root["Resources"].items():
        if resource["Type"] in KEPT_SAM:
            resources[name] = copy.deepcopy(resource)
    for name, resource in translated["Resources"].items():
        if placed[name] == "":
            resources[name] = linker.resource(resource)
            _code(resources[name], out)
    resources.update(linker.link(alarms(resources)))
    for resource in resources.values():
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            layer = resource["Properties"]
            layer["ContentUri"] = os.path.relpath(ROOT / layer["ContentUri"], out) + "/"
    root_template = {
        key: copy.deepcopy(value)
        for key, value in source_root.items()
        if key not in ("Globals", "Resources", "Conditions")
    }
    used = _conditions(linker, conditions)
    if used:
        root_template["Conditions"] = used
    root_template["Transform"] = SAM_TRANSFORM
    root_template["Resources"] = resources
    compiled["template.yaml"] = root_template
    return compiled


def _conditions(linker: Linker, conditions: dict[str, Any]) -> dict[str, Any]:
    used: dict[str, Any] = {}
    todo = sorted(linker.conditions)
    while todo:
        name = todo.pop()
        if name in used:
            continue
        before = set(linker.conditions)
        used[name] = linker.link(conditions[name])
        todo.extend(sorted(linker.conditions - before))
    return used


def resource_counts(compiled: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {path: len(template["Resources"]) for path, template in compiled.items()}


class _Dumper(yaml.SafeDumper):
    pass


def write(compiled: dict[str, dict[str, Any]], out: Path = OUT) -> Path:
    for path, template in compiled.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.dump(template, Dumper=_Dumper, sort_keys=False, width=120))
    return out / "template.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.stacks")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--count", action="store_true", help="print resources per stack")
    args = parser.parse_args(argv)
    try:
        compiled = compile_stacks(args.out.resolve())
    except CompileError as error:
        print(f"infra.stacks: {error}", file=sys.stderr)
        return 2
    write(compiled, args.out.resolve())
    if not args.count:
        return 0
    over = False
    for path, count in resource_counts(compiled).items():
        flag = "  ABOVE THE LIMIT" if count > LIMIT else ""
        over = over or bool(flag)
        print(f"{path:28} {count:4} resources (limit {LIMIT}){flag}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
