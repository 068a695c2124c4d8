"""`make openapi`: merge every API function's Powertools schema into one OpenAPI document.

    python -m infra.openapi --write   # regenerate docs/openapi.json and the copy the API serves
    python -m infra.openapi --check   # exit 1 when either file differs from a fresh document

The routes, and which of them need credentials, come from template.yaml: a function joins the
document when it has an `Api` event. Resolver functions describe themselves through Powertools;
plain handlers (liveness, the OpenAPI document itself) get a minimal entry from the template.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib.util
import json
import os
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

from infra.environment import environment_for
from infra.template import template

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "common"
OUTPUTS = (ROOT / "docs" / "openapi.json", ROOT / "functions" / "core" / "openapi" / "openapi.json")

TITLE = "Kumo API"
PROBLEM_CONTENT_TYPE = "application/problem+json"
# The authorizer reads the access token from this cookie when no bearer header is sent;
# tests/unit/test_openapi_fresh.py checks it against kumo.identity.authn.ACCESS_COOKIE.
ACCESS_COOKIE = "kumo_access"

# Importing a handler reads settings; the values only need to exist, nothing is called.
DUMMY_ENVIRONMENT = {
    **environment_for(
        "openapi",
        account="123456789012",
        websocket_url="https://ws.execute-api.us-east-1.amazonaws.com/openapi",
    ),
    "AWS_DEFAULT_REGION": "us-east-1",
}

SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": ACCESS_COOKIE},
}
# Either credential is enough, so they are alternatives (a list of one-key objects).
AUTHENTICATED: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]

PROBLEM_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "title": "Problem",
        "description": "RFC 7807 problem details: the body of every error answer.",
        "type": "object",
        "properties": {
            "type": {"type": "string", "description": "urn:kumo:problem:<slug>"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "The request path."},
            "request_id": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/ProblemFieldError"},
                "description": "One entry per invalid field (validation errors only).",
            },
        },
        # Gateway-made answers (DEFAULT_4XX) carry no status, so it is not required.
        "required": ["type", "title", "detail"],
        "additionalProperties": True,
    },
    "ProblemFieldError": {
        "title": "ProblemFieldError",
        "type": "object",
        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
        "required": ["field", "message"],
    },
}


class OpenApiError(RuntimeError):
    """The template and the code disagree, or two functions define one schema differently."""


@dataclass(frozen=True, slots=True)
class ApiRoute:
    function: str
    code_dir: Path
    handler_module: str
    method: str
    path: str
    authenticated: bool


# --- the template ------------------------------------------------------------------------


def _ref(value: Any) -> str | None:
    return str(value["Ref"]) if isinstance(value, dict) and "Ref" in value else None


def _default_authorizer(rest_api: Any, resources: dict[str, Any], globals_: dict[str, Any]) -> Any:
    api_name = _ref(rest_api)
    if api_name is not None:
        auth = resources.get(api_name, {}).get("Properties", {}).get("Auth", {})
    else:
        auth = globals_.get("Api", {}).get("Auth", {})
    return auth.get("DefaultAuthorizer")


def api_routes() -> list[ApiRoute]:
    """Every (function, method, path) the template wires to API Gateway."""
    data = template()
    resources: dict[str, Any] = data["Resources"]
    globals_: dict[str, Any] = data.get("Globals", {})
    default_handler = str(globals_.get("Function", {}).get("Handler", "app.lambda_handler"))
    routes = []
    for name, resource in sorted(resources.items()):
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        handler = str(props.get("Handler", default_handler))
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "Api":
                continue
            event_props = event["Properties"]
            method = str(event_props["Method"]).lower()
            if method == "any":
                raise OpenApiError(f"{name}: method ANY is not supported by the generator")
            auth = event_props.get("Auth", {})
            authorizer = auth.get(
                "Authorizer",
                _default_authorizer(event_props.get("RestApiId"), resources, globals_),
            )
            routes.append(
                ApiRoute(
                    function=name,
                    code_dir=ROOT / str(props["CodeUri"]),
                    handler_module=handler.rsplit(".", 1)[0],
                    method=method,
                    path=str(event_props["Path"]),
                    authenticated=authorizer not in (None, "NONE"),
                )
            )
    return routes


# --- the functions -----------------------------------------------------------------------


def prepare_environment() -> None:
    """What a handler import needs: the layer on sys.path and every setting present."""
    for key, value in DUMMY_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if str(LAYER) not in sys.path:
        sys.path.insert(0, str(LAYER))


def _source(route: ApiRoute) -> Path:
    return route.code_dir / f"{route.handler_module.replace('.', '/')}.py"


def _defines_app(source: Path) -> bool:
    # Plain handlers are never imported: the OpenAPI handler, for one, reads this very output.
    tree = ast.parse(source.read_text())
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "app" for t in targets):
            return True
    return False


def _summary(source: Path, method: str, path: str) -> str | None:
    # Each module's first line reads "<METHOD> <path>: <what it does>" (house style).
    docstring = ast.get_docstring(ast.parse(source.read_text())) or ""
    first_line = docstring.strip().splitlines()[0] if docstring.strip() else ""
    prefix = f"{method.upper()} {path}:"
    if first_line.startswith(prefix):
        text = first_line[len(prefix) :].strip()
        return text[:1].upper() + text[1:] if text else None
    return None


def load_resolver(route: ApiRoute) -> ApiGatewayResolver | None:
    """The module's Powertools resolver, imported under a unique name; None for plain handlers."""
    source = _source(route)
    if not _defines_app(source):
        return None
    relative = route.code_dir.relative_to(ROOT).as_posix().strip("/")
    module_name = "kumo_openapi_" + re.sub(r"\W", "_", f"{relative}/{route.handler_module}")
    spec = importlib.util.spec_from_file_location(module_name, source)
    if spec is None or spec.loader is None:
        raise OpenApiError(f"{route.function}: cannot import {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # Lambda puts the function's folder first on sys.path; sibling modules resolve the same way.
    sys.path.insert(0, str(route.code_dir))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(route.code_dir))
    app = getattr(module, "app", None)
    return app if isinstance(app, ApiGatewayResolver) else None


def _version() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return str(data["project"]["version"])


def _resolver_schema(resolver: ApiGatewayResolver) -> dict[str, Any]:
    # The JSON form is what Powertools itself serves: aliases applied, empty fields left out.
    raw = resolver.get_openapi_json_schema(title=TITLE, version=_version())
    schema: dict[str, Any] = json.loads(raw)
    return schema


def _plain_operation(route: ApiRoute) -> dict[str, Any]:
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", route.function.removesuffix("Function")).lower()
    return {
        "operationId": re.sub(r"\W", "_", f"{name}{route.path}") + f"_{route.method}",
        "summary": f"{route.method.upper()} {route.path}",
        "responses": {
            "200": {
                "description": "Successful Response",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    }


# --- the merge ---------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def merge_schemas(
    merged: dict[str, Any], origins: dict[str, str], schemas: dict[str, Any], origin: str
) -> None:
    """Add component schemas; one name with two different contents is an error, not a pick."""
    for name, schema in schemas.items():
        if name in merged and _canonical(merged[name]) != _canonical(schema):
            raise OpenApiError(
                f"component schema {name!r} differs between {origins[name]} and {origin}; "
                "give one of the models another name"
            )
        merged.setdefault(name, schema)
        origins.setdefault(name, origin)


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _rate_limited(limits: tuple[Any, ...]) -> dict[str, Any]:
    answer = _problem("An abuse limit is spent: " + "; ".join(limit.counts for limit in limits))
    answer["headers"] = {
        "Retry-After": {
            "description": "Seconds until the limit's window ends",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
    return answer


def _finish_operation(
    operation: dict[str, Any], route: ApiRoute, summary: str | None, limits: tuple[Any, ...] = ()
) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in ("204", "304"):
        # Powertools describes a None return as a JSON null; these answers have no body at all.
        if status in responses:
            responses[status].pop("content", None)
    # Powertools documents its own 422 shape; the resolver answers with problem details.
    responses.pop("422", None)
    if operation.get("parameters") or operation.get("requestBody"):
        responses["422"] = _problem("Validation failed: `errors` lists each invalid field")
    if operation.get("requestBody"):
        # kumo.core.request_body reads every JSON body the same way (ADR 0023).
        responses["400"] = _problem("The body is not JSON (`malformed-json`) or nests too deep")
        responses["413"] = _problem("The body is larger than the route takes")
        responses["415"] = _problem("The body is not sent as application/json")
    if route.authenticated:
        responses["401"] = _problem("Missing or invalid credentials")
        responses["403"] = _problem("These credentials do not allow this request")
        operation["security"] = copy.deepcopy(AUTHENTICATED)
    if limits:
        responses["429"] = _rate_limited(limits)
    responses["default"] = _problem("Any other error, as problem details")
    if summary and operation.get("summary") == f"{route.method.upper()} {route.path}":
        operation["summary"] = summary


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _reachable(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """Only the schemas some operation uses (drops Powertools' unused validation models)."""
    prefix = "#/components/schemas/"
    pending = [r.removeprefix(prefix) for r in _refs(paths) if r.startswith(prefix)]
    kept: dict[str, Any] = {}
    while pending:
        name = pending.pop()
        if name in kept:
            continue
        if name not in schemas:
            raise OpenApiError(f"{prefix}{name} is referenced but never defined")
        kept[name] = schemas[name]
        pending.extend(r.removeprefix(prefix) for r in _refs(schemas[name]) if r.startswith(prefix))
    return kept


def _created_id_schema(operation: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """Does this operation answer 201 (or 202) with a body that has an `id`?"""
    for status in ("201", "202"):
        content = operation.get("responses", {}).get(status, {}).get("content", {})
        ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
        schema = schemas.get(ref.removeprefix("#/components/schemas/"), {})
        if "id" in schema.get("properties", {}):
            return True
    return False


def add_links(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """OpenAPI links from each create to the operations on what it created: `POST /x` answers
    an `id` that `/x/{x_id}...` takes, so a stateful fuzzer (and a reader) can follow them."""
    for path, item in paths.items():
        create = item.get("post")
        if create is None or not _created_id_schema(create, schemas):
            continue
        status = "201" if "201" in create["responses"] else "202"
        links: dict[str, Any] = {}
        for other, methods in sorted(paths.items()):
            rest = other.removeprefix(path + "/")
            if other == rest or not rest.startswith("{"):
                continue
            parameter = rest.split("}", 1)[0][1:]
            # Only the id the create answers: `/orgs/{org_id}/members/{user_id}` needs two.
            if rest.count("{") != 1:
                continue
            # The create's own path ids (`/devices/{device_id}/commands`) carry over.
            carried = {
                f"path.{name}": f"$request.path.{name}" for name in re.findall(r"\{(\w+)\}", path)
            }
            for operation in (methods[method] for method in sorted(methods)):
                links[operation["operationId"]] = {
                    "operationId": operation["operationId"],
                    "parameters": {**carried, f"path.{parameter}": "$response.body#/id"},
                }
        if links:
            create["responses"][status]["links"] = links


_BOUNDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})


def _integral_bounds(node: Any) -> None:
    """Write whole-number bounds as integers, in place. Powertools writes `le=100` as 100.0,
    and a client that sends a bound as written would send 100.0 to an integer field, which
    the strict models refuse (ADR 0023)."""
    if isinstance(node, list):
        for item in node:
            _integral_bounds(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in _BOUNDS and isinstance(value, float) and value.is_integer():
                node[key] = int(value)
            else:
                _integral_bounds(value)


def generate() -> dict[str, Any]:
    """The merged document for whatever template.yaml and the handlers say right now."""
    prepare_environment()
    from kumo.core.abuse_limits import ROUTES  # reads settings: after prepare_environment

    routes = api_routes()
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    origins: dict[str, str] = {}
    merge_schemas(schemas, origins, copy.deepcopy(PROBLEM_SCHEMAS), "infra/openapi.py")
    documents: dict[str, dict[str, Any] | None] = {}

    for route in routes:
        if route.function not in documents:
            resolver = load_resolver(route)
            documents[route.function] = _resolver_schema(resolver) if resolver else None
        document = documents[route.function]
        if document is None:
            operation = _plain_operation(route)
        else:
            operation = document.get("paths", {}).get(route.path, {}).get(route.method)
            if operation is None:
                raise OpenApiError(
                    f"{route.function}: template.yaml routes {route.method.upper()} {route.path} "
                    f"to {_source(route).relative_to(ROOT)}, whose resolver has no such route"
                )
            operation = copy.deepcopy(operation)
        if route.method in paths.get(route.path, {}):
            raise OpenApiError(f"{route.method.upper()} {route.path} is routed twice")
        summary = _summary(_source(route), route.method, route.path)
        limits = ROUTES.get(f"{route.method.upper()} {route.path}", ())
        _finish_operation(operation, route, summary, limits)
        paths.setdefault(route.path, {})[route.method] = operation

    for function, document in sorted(documents.items()):
        if document is None:
            continue
        wired = {(r.path, r.method) for r in routes if r.function == function}
        for path, methods in document.get("paths", {}).items():
            for method in methods:
                if (path, method) not in wired:
                    raise OpenApiError(
                        f"{function}: the resolver serves {method.upper()} {path}, "
                        "but template.yaml has no Api event for it"
                    )
        merge_schemas(schemas, origins, document.get("components", {}).get("schemas", {}), function)

    add_links(paths, schemas)
    _integral_bounds(paths)
    _integral_bounds(schemas)
    tags = sorted(
        {tag for item in paths.values() for op in item.values() for tag in op.get("tags", [])}
    )
    first = next((d for d in documents.values() if d is not None), None)
    return {
        "openapi": first["openapi"] if first else "3.1.0",
        "info": {
            "title": TITLE,
            "version": _version(),
            "description": "Every route of the Kumo REST API, merged from the functions' "
            "Powertools resolvers by `make openapi`. Errors are RFC 7807 problem details.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {
            "schemas": _reachable(paths, schemas),
            "securitySchemes": copy.deepcopy(SECURITY_SCHEMES),
        },
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def stale_outputs(text: str) -> list[Path]:
    return [path for path in OUTPUTS if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.openapi", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the files")
    mode.add_argument("--check", action="store_true", help="exit 1 when a file is stale")
    args = parser.parse_args(argv)
    try:
        text = render(generate())
    except OpenApiError as error:
        print(f"openapi: {error}", file=sys.stderr)
        return 2
    stale = stale_outputs(text)
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run `make openapi`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    count = sum(len(item) for item in json.loads(text)["paths"].values())
    print(f"openapi: {count} operations; {len(stale)} of {len(OUTPUTS)} files rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
