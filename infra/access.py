"""What each function's code does to AWS resources, found from the code its handler can reach.

    python -m infra.access                   # a line per function: resource=read|write ...
    python -m infra.access --cross-context   # only the tables of another context

infra.environment answers "which variables can this function's imports read" per module, which
is what its environment needs (an import runs module and class bodies). Permissions need a
finer answer: `kumo.identity.service` registers users and queues e-mails, but `GET /users/me`
only calls its `get_user`. So this follows calls, not imports:

- A node is a module's top-level function or class (a class with all its methods), or the
  module's own body (reached whenever the module is imported). A handler file is reached whole.
- From a node, every name it uses that resolves to a `kumo` function, class or module (through
  its module's imports, lazy ones included) is reached too. Method calls on values are not
  resolved; that is why a class counts as one node.
- A reached node that reads a setting behind a resource (`get_settings().tasks_table`, or a
  model class whose Meta does) uses that resource: reading at least.
- A reached node that calls a writing operation (`WRITES`) writes the resources it names itself
  or through the model classes it refers to; one that names none writes everything its own
  callees name (the conservative side: a write attributed too widely only keeps a permission).

Over-approximation is the safe direction throughout: an extra edge keeps a permission, a missed
one would remove a needed one. `tests/unit/test_infra_access.py` compares the result with the
Policies in template.yaml.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from infra.environment import FUNCTIONS, LAYER, _module_file, _parsed, handlers

Level = Literal["read", "write"]

# The variable behind each setting that names a resource -> that resource's logical id.
RESOURCE_OF_VARIABLE: dict[str, str] = {
    "IDENTITY_TABLE": "IdentityTable",
    "ORGS_TABLE": "OrgsTable",
    "TASKS_TABLE": "TasksTable",
    "DEVICES_TABLE": "DevicesTable",
    "TELEMETRY_TABLE": "TelemetryTable",
    "ALERTS_TABLE": "AlertsTable",
    "CONNECTIONS_TABLE": "ConnectionsTable",
    "MEDIA_TABLE": "MediaTable",
    "CHAT_TABLE": "ChatTable",
    "MEDIA_BUCKET": "MediaBucket",
    "MEDIA_UPLOADS_QUEUE_URL": "MediaUploadsQueue",
    "FANOUT_QUEUE_URL": "FanoutQueue",
    "FANOUT_DLQ_URL": "FanoutDeadLetterQueue",
    "SKETCH_COMPACTION_QUEUE_URL": "SketchCompactionQueue",
    "SKETCH_COMPACTION_DLQ_URL": "SketchCompactionDeadLetterQueue",
    "MEDIA_UPLOADS_DLQ_URL": "MediaUploadsDeadLetterQueue",
    "DATA_BUCKET": "DataBucket",
    "EVENT_BUS_NAME": "KumoEventBus",
    "MAIL_QUEUE_URL": "MailQueue",
    "MAIL_DLQ_URL": "MailDeadLetterQueue",
    "WEBHOOK_QUEUE_URL": "WebhookQueue",
    "WEBHOOK_DLQ_URL": "WebhookDeadLetterQueue",
    "EXPORT_QUEUE_URL": "ExportQueue",
    "EXPORT_DLQ_URL": "ExportDeadLetterQueue",
    "CONFIG_SHADOW_QUEUE_URL": "ConfigShadowQueue",
    "CONFIG_SHADOW_DLQ_URL": "ConfigShadowDeadLetterQueue",
    "TELEMETRY_QUEUE_URL": "TelemetryQueue",
    "TELEMETRY_DLQ_URL": "TelemetryDeadLetterQueue",
    "ARCHIVE_TELEMETRY_DLQ_URL": "ArchiveTelemetryDeadLetterQueue",
    "COMMAND_RESULTS_QUEUE_URL": "CommandResultsQueue",
    "COMMAND_RESULTS_DLQ_URL": "CommandResultsDeadLetterQueue",
    "CONFIG_REPORTS_QUEUE_URL": "ConfigReportsQueue",
    "CONFIG_REPORTS_DLQ_URL": "ConfigReportsDeadLetterQueue",
    "WEBSOCKET_MANAGEMENT_URL": "WebSocketApi",
    "API_PATH_PREFIX": "KumoApi",
    "MAIL_SENDER": "MailSender",
    # Signing keys in Secrets Manager, once they are there (ADR 21).
    "JWT_KEY_SECRET_ID": "JwtSigningKeys",
    "CURSOR_KEY_SECRET_ID": "CursorSigningKeys",
}

# Calls that change a resource: PynamoDB items, batches and transactions (`write.save(...)`
# inside `dynamo.transaction`), and the boto3 operations Kumo uses. Reading needs no list.
# `update` and `delete` also match dict and set methods: that only widens, never narrows.
WRITES: frozenset[str] = frozenset(
    {
        # DynamoDB (PynamoDB models, batches, TransactWrite; boto3 tables)
        "save",
        "update",
        "delete",
        "batch_write",
        "put_item",
        "update_item",
        "delete_item",
        "batch_write_item",
        "transact_write_items",
        "TransactWrite",
        "transaction",
        # SQS: sending; receiving and changing visibility are the poller's (read) side
        "send_message",
        "send_message_batch",
        # EventBridge, SES, WebSocket management
        "put_events",
        "send_email",
        "send_raw_email",
        "post_to_connection",
        "delete_connection",
        # S3
        "put_object",
        "copy_object",
        "upload_fileobj",
        "delete_object",
        "delete_objects",
        "create_multipart_upload",
        "upload_part",
        "complete_multipart_upload",
        "abort_multipart_upload",
        "generate_presigned_post",
    }
)

MODULE_BODY = ""


@dataclass(frozen=True, slots=True)
class Node:
    path: Path
    name: str  # a top-level def or class, or MODULE_BODY

    def __str__(self) -> str:
        where = self.path.relative_to(FUNCTIONS.parent).as_posix()
        return f"{where}:{self.name or '<module>'}"


@dataclass(slots=True)
class _Module:
    path: Path
    defs: dict[str, ast.AST] = field(default_factory=dict)
    classes: set[str] = field(default_factory=set)
    body: list[ast.AST] = field(default_factory=list)
    # A name bound by an import -> (module, None) for a module, (module, name) for a member.
    aliases: dict[str, set[tuple[str, str | None]]] = field(default_factory=dict)


def _is_module(name: str) -> bool:
    return _module_file(name) is not None


@cache
def _index(path: Path) -> _Module:
    tree = _parsed(path)
    module = _Module(path)
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            module.defs[stmt.name] = stmt
            if isinstance(stmt, ast.ClassDef):
                module.classes.add(stmt.name)
            # Decorators run at import, with the module (`@app.get(...)` is a route). A class's
            # bases run then too, but what they name is the class's: a model's table is used by
            # the code that uses the model, not by whatever imports its module.
            module.body.extend(stmt.decorator_list)
        else:
            module.body.append(stmt)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kumo"):
            base = node.module or ""
            for alias in node.names:
                target = f"{base}.{alias.name}"
                bound = (target, None) if _is_module(target) else (base, alias.name)
                module.aliases.setdefault(alias.asname or alias.name, set()).add(bound)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kumo") and alias.asname:
                    module.aliases.setdefault(alias.asname, set()).add((alias.name, None))
    return module


def _member(module_name: str, name: str, seen: frozenset[str] = frozenset()) -> set[Node]:
    """The node `name` is in `module_name`: its def, or what its import there binds."""
    path = _module_file(module_name)
    if path is None:
        return set()
    found = {Node(path, MODULE_BODY)}
    module = _index(path)
    if name in module.defs:
        found.add(Node(path, name))
    elif name in module.aliases and name not in seen:
        for target, member in module.aliases[name]:
            found |= _targets(target, member, seen | {name})
    return found


def _targets(module_name: str, member: str | None, seen: frozenset[str] = frozenset()) -> set[Node]:
    if member is None:
        path = _module_file(module_name)
        return set() if path is None else {Node(path, MODULE_BODY)}
    return _member(module_name, member, seen)


def _trees(node: Node) -> list[ast.AST]:
    module = _index(node.path)
    return module.body if node.name == MODULE_BODY else [module.defs[node.name]]


def _walk(node: Node) -> Iterator[ast.AST]:
    for tree in _trees(node):
        if isinstance(tree, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            # Its decorators run at import, in the module body (`@app.delete(...)` is a route).
            for name, value in ast.iter_fields(tree):
                if name != "decorator_list":
                    for child in value if isinstance(value, list) else [value]:
                        if isinstance(child, ast.AST):
                            yield from ast.walk(child)
        else:
            yield from ast.walk(tree)


@cache
def references(node: Node) -> frozenset[Node]:
    """The kumo nodes this node's code names."""
    module = _index(node.path)
    found: set[Node] = {Node(node.path, MODULE_BODY)}
    for item in _walk(node):
        if isinstance(item, ast.Name):
            if item.id in module.defs:
                found.add(Node(node.path, item.id))
            for target, member in module.aliases.get(item.id, ()):
                found |= _targets(target, member)
        elif isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name):
            for target, member in module.aliases.get(item.value.id, ()):
                if member is None:
                    found |= _member(target, item.attr)
                elif _is_module(f"{target}.{member}"):
                    found |= _member(f"{target}.{member}", item.attr)
    found.discard(node)
    return frozenset(found)


@cache
def _settings() -> dict[str, str]:
    """Setting attribute -> its variable, for the settings that name a resource."""
    if str(LAYER) not in sys.path:
        sys.path.insert(0, str(LAYER))
    from kumo.core.config import variables

    return {
        name: env.variable
        for name, env in variables().items()
        if env.variable in RESOURCE_OF_VARIABLE
    }


@cache
def _named(node: Node) -> frozenset[str]:
    """Resources this node's own code names through a setting."""
    settings = _settings()
    return frozenset(
        RESOURCE_OF_VARIABLE[settings[item.attr]]
        for item in _walk(node)
        if isinstance(item, ast.Attribute) and item.attr in settings
    )


@cache
def _model_resources(node: Node, seen: frozenset[Node] = frozenset()) -> frozenset[str]:
    """A class's resources: what its body names, through its Meta and bases too."""
    found = set(_named(node))
    for ref in references(node):
        if ref.name in _index(ref.path).classes and ref not in seen:
            found |= _model_resources(ref, seen | {node})
    return frozenset(found)


@cache
def _local(node: Node) -> frozenset[str]:
    """Resources a node names itself or through the classes it refers to."""
    found = set(_named(node))
    for ref in references(node):
        if ref.name in _index(ref.path).classes:
            found |= _model_resources(ref)
    return frozenset(found)


@cache
def _writes(node: Node) -> bool:
    for item in _walk(node):
        if isinstance(item, ast.Call):
            called = item.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            if name in WRITES:
                return True
    return False


def reached(start: set[Node]) -> set[Node]:
    seen: set[Node] = set()
    todo = list(start)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(references(node) - seen)
    return seen


def _handler_nodes(handler: Path) -> set[Node]:
    module = _index(handler)
    return {Node(handler, MODULE_BODY), *(Node(handler, name) for name in module.defs)}


@cache
def access_of(handler: Path) -> dict[str, Level]:
    """Resource logical id -> what the function with this handler does to it."""
    nodes = reached(_handler_nodes(handler))
    access: dict[str, Level] = {}
    for node in nodes:
        for resource in _named(node):
            access.setdefault(resource, "read")
    for node in nodes:
        if _writes(node):
            for resource in _written_by(node, nodes):
                access[resource] = "write"
    return dict(sorted(access.items()))


def _written_by(node: Node, nodes: set[Node]) -> frozenset[str]:
    """What a writing node writes: what it names; else what its callees name (a helper that
    reads the setting); else what its callers name (a writer handed the name, like a bucket)."""
    written = _local(node) or frozenset().union(*(_named(n) for n in reached({node})))
    callers = {node}
    while not written:
        wider = {n for n in nodes if references(n) & callers} | callers
        if wider == callers:
            # Up to the handler nothing names a resource: a dict's `update`, not AWS.
            return frozenset()
        callers = wider
        written = frozenset().union(*(_local(n) for n in callers))
    return written


# SAM policy templates -> what they grant on the resource they name.
POLICY_LEVELS: dict[str, Level] = {
    "DynamoDBReadPolicy": "read",
    "DynamoDBWritePolicy": "write",
    "DynamoDBCrudPolicy": "write",
    "SQSPollerPolicy": "read",
    "SQSSendMessagePolicy": "write",
    "S3ReadPolicy": "read",
    "S3WritePolicy": "write",
    "S3CrudPolicy": "write",
    "EventBridgePutEventsPolicy": "write",
    "SESCrudPolicy": "write",
    "AWSSecretsManagerGetSecretValuePolicy": "read",
}
# Verbs of IAM actions that only read; any other action in a statement writes.
_READ_VERBS = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "Receive", "ConditionCheck")


@dataclass(frozen=True, slots=True)
class Grant:
    """One resource a function's Policies give it access to, and which entry does."""

    policy: str
    resource: str
    level: Level


def _named_resources(value: object) -> set[str]:
    """Logical ids (or parameters) a template value refers to: Ref, GetAtt, ${X} in Sub."""
    found: set[str] = set()
    if isinstance(value, dict):
        for tag, inner in value.items():
            # `!GetAtt` reads as {"GetAtt": "A.B"} or {"Fn::GetAtt": ["A", "B"]}, by loader.
            key = tag.removeprefix("Fn::")
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "GetAtt":
                found.add((inner if isinstance(inner, str) else inner[0]).split(".")[0])
            elif key == "Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
            else:
                found |= _named_resources(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _named_resources(inner)
    return found


def _statement_grants(policy: str, statements: list[dict[str, Any]]) -> list[Grant]:
    grants = []
    for statement in statements:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        writes = any(not a.split(":")[-1].startswith(_READ_VERBS) for a in actions)
        for resource in _named_resources(statement.get("Resource")) & set(
            RESOURCE_OF_VARIABLE.values()
        ):
            grants.append(Grant(policy, resource, "write" if writes else "read"))
    return grants


def grants_of(function: dict[str, Any], resources: dict[str, Any]) -> list[Grant]:
    """What a template function's Policies grant on Kumo's resources."""
    grants: list[Grant] = []
    for entry in function["Properties"].get("Policies", []):
        if isinstance(entry, dict) and set(entry) == {"Ref"}:
            managed = resources[entry["Ref"]]["Properties"]["PolicyDocument"]["Statement"]
            grants += _statement_grants(entry["Ref"], managed)
        elif isinstance(entry, dict) and "Statement" in entry:
            grants += _statement_grants("inline Statement", entry["Statement"])
        elif isinstance(entry, dict):
            for name, arguments in entry.items():
                for resource in _named_resources(arguments):
                    grants.append(Grant(name, resource, POLICY_LEVELS.get(name, "write")))
    return grants


def excess(logical_id: str, function: dict[str, Any], resources: dict[str, Any]) -> list[str]:
    """Why this function's Policies grant more than its code uses; empty when they do not."""
    needs = dict(access_of(function_path(function["Properties"]["CodeUri"])))
    # Lambda itself sends a failed batch's position to an event source's OnFailure queue,
    # with the function's role.
    for event in function["Properties"].get("Events", {}).values():
        destination = event.get("Properties", {}).get("DestinationConfig", {})
        for resource in _named_resources(destination):
            needs[resource] = "write"
    problems = []
    for grant in grants_of(function, resources):
        used = needs.get(grant.resource)
        if used is None:
            problems.append(
                f"{logical_id}: {grant.policy} on {grant.resource}, which its code never uses"
            )
        elif grant.level == "write" and used == "read":
            problems.append(
                f"{logical_id}: {grant.policy} on {grant.resource}, which its code only reads"
            )
    return problems


def missing_tables(
    logical_id: str, function: dict[str, Any], resources: dict[str, Any]
) -> list[str]:
    """Tables this function's code uses that its Policies do not grant as it uses them: what
    the local engine, which does not enforce IAM, would let through and AWS would deny."""
    needs = access_of(function_path(function["Properties"]["CodeUri"]))
    held: dict[str, Level] = {}
    for grant in grants_of(function, resources):
        if grant.level == "write" or grant.resource not in held:
            held[grant.resource] = grant.level
    return [
        f"{logical_id}: its code {level}s {table}, which its Policies "
        + ("do not grant" if table not in held else "grant read-only")
        for table, level in needs.items()
        if table in table_owners() and held.get(table) != "write" and level != held.get(table)
    ]


def function_path(code_uri: str) -> Path:
    return FUNCTIONS.parent / code_uri.rstrip("/") / "app.py"


@cache
def table_owners() -> dict[str, str]:
    """Table logical id -> the context whose models map it (kumo/<context>/*models.py)."""
    owners: dict[str, str] = {}
    for path in sorted((LAYER / "kumo").glob("*/*models.py")):
        for name in _index(path).classes:
            for resource in _named(Node(path, name)):
                if not resource.endswith("Table"):
                    continue
                # Another context may map a table it keeps records in (telemetry's exports on
                # the devices table, ADR 20): the table's name says whose it is.
                named = resource.removesuffix("Table").lower() == path.parent.name
                if named or resource not in owners:
                    owners[resource] = path.parent.name
    return owners


def cross_context(handler: Path) -> dict[str, Level]:
    """Tables of another context that the function with this handler uses."""
    context = handler.parent.parent.name
    owners = table_owners()
    return {
        resource: level
        for resource, level in access_of(handler).items()
        if resource in owners and owners[resource] != context
    }


def main(argv: list[str]) -> int:
    only_cross = "--cross-context" in argv
    for handler in handlers():
        name = handler.parent.relative_to(FUNCTIONS)
        used = cross_context(handler) if only_cross else access_of(handler)
        if used or not only_cross:
            line = " ".join(f"{r}={level}" for r, level in used.items())
            print(f"{name}: {line or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def _run_at_import(tree: ast.Module) -> Iterator[ast.AST]:
    """What importing a module runs: its body and its classes' bodies (a PynamoDB model's Meta
    reads its table's setting there), decorators and defaults, but no function's body."""
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            todo.extend(node.decorator_list)
            todo.extend(node.args.defaults)
            todo.extend(default for default in node.args.kw_defaults if default is not None)
            continue
        if isinstance(node, ast.Lambda):
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


@cache
def variables_used(handler: Path) -> tuple[str, ...]:
    """The environment variables behind the settings this handler's function reads: at import
    (every module it imports, infra.environment.kumo_modules) and in the code it can call.
    What its environment is given (infra/stacks.py); narrower than every setting its imports
    name, because `GET /orgs/{id}` imports the services that send invitations but calls none."""
    if str(LAYER) not in sys.path:
        sys.path.insert(0, str(LAYER))
    from kumo.core.config import variables

    from infra.environment import kumo_modules

    known = variables()
    read = {
        item.attr
        for node in reached(_handler_nodes(handler))
        for item in _walk(node)
        if isinstance(item, ast.Attribute)
    }
    read |= {
        item.attr
        for path in kumo_modules(handler)
        for item in _run_at_import(_parsed(path))
        if isinstance(item, ast.Attribute)
    }
    return tuple(sorted(known[name].variable for name in read if name in known))
