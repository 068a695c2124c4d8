"""The committed OpenAPI documents (docs/ and the served copy) match the code and template.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra import openapi
from tests.support.template import ROOT, resources

STALE = "is stale: run `make openapi`"


def _template_api_events() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, event properties) of every Api event, read straight from the template."""
    events = []
    for resource in resources("AWS::Serverless::Function").values():
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] == "Api":
                props = event["Properties"]
                events.append((props["Method"].lower(), props["Path"], props))
    return events


@pytest.fixture(scope="module")
def fresh() -> str:
    return openapi.render(openapi.generate())


@pytest.mark.parametrize("path", openapi.OUTPUTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_openapi_file_matches_a_fresh_generation(path: Path, fresh: str) -> None:
    # Given the committed document / When compared with one generated now
    relative = path.relative_to(ROOT).as_posix()
    assert path.exists(), f"{relative} is missing: run `make openapi`"
    # Then they are identical (no diff printed: the file is long, the remedy is one command)
    assert path.read_text() == fresh, f"{relative} {STALE}"


def test_openapi_document_lists_every_template_api_route(fresh: str) -> None:
    # Given the routes template.yaml wires to API Gateway
    routes = [(method, path) for method, path, _ in _template_api_events()]
    # When the document is generated
    paths = json.loads(fresh)["paths"]
    # Then each of them has an operation
    missing = [f"{m.upper()} {p}" for m, p in routes if m not in paths.get(p, {})]
    assert routes
    assert not missing, f"routes missing from the OpenAPI document: {missing}"


def test_openapi_document_secures_exactly_the_authenticated_routes(fresh: str) -> None:
    # Given which template routes opt out of the authorizer
    paths = json.loads(fresh)["paths"]
    for method, path, props in _template_api_events():
        public = props.get("Auth", {}).get("Authorizer") == "NONE"
        # When the operation is looked up / Then security and 401 appear only on protected ones
        operation = paths[path][method]
        assert ("security" in operation) is not public, f"{method.upper()} {path}"
        assert ("401" in operation["responses"]) is not public, f"{method.upper()} {path}"


def test_openapi_cookie_scheme_names_the_cookie_the_authorizer_reads() -> None:
    # Given the cookie the identity service reads / Then the document names the same one
    from kumo.identity.authn import ACCESS_COOKIE

    assert openapi.SECURITY_SCHEMES["cookieAuth"]["name"] == ACCESS_COOKIE


def test_merge_schemas_rejects_one_name_with_two_contents() -> None:
    # Given a schema already merged from one function
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    openapi.merge_schemas(merged, origins, {"UserOut": {"type": "object"}}, "GetMeFunction")
    # When another function brings a different schema under the same name
    # Then the merge fails and names both functions
    with pytest.raises(openapi.OpenApiError, match="GetMeFunction and OtherFunction"):
        openapi.merge_schemas(merged, origins, {"UserOut": {"type": "string"}}, "OtherFunction")


def test_each_create_links_to_the_operations_on_what_it_created(fresh: str) -> None:
    # Given the document
    paths = json.loads(fresh)["paths"]

    # When the links of the creates are read
    def links(path: str) -> dict[str, Any]:
        responses = paths[path]["post"]["responses"]
        found: dict[str, Any] = (responses.get("201") or responses["202"])["links"]
        return found

    # Then a created org's id fills the org routes, and a command keeps its device's id
    org = links("/api/v1/orgs")["get_org_api_v1_orgs__org_id__get"]
    assert org["parameters"] == {"path.org_id": "$response.body#/id"}
    (command,) = links("/api/v1/devices/{device_id}/commands").values()
    assert command["parameters"] == {
        "path.device_id": "$request.path.device_id",
        "path.command_id": "$response.body#/id",
    }
    # And no link claims to fill a route that needs a second id
    member_routes = [name for name in links("/api/v1/orgs") if "members__user_id" in name]
    assert member_routes == []


def test_every_rate_limited_route_declares_its_429(fresh: str) -> None:
    from kumo.core import abuse_limits
    from kumo.core.rate_limit import Limit

    # Given every limit Kumo spends, and the routes said to spend them
    declared = {value for value in vars(abuse_limits).values() if isinstance(value, Limit)}
    routes = {**abuse_limits.ROUTES, **abuse_limits.SOCKET_ROUTES}
    routed = {limit for limits in routes.values() for limit in limits}
    # Then no limit is spent without a route that answers its 429
    assert declared == routed
    # And each of those routes exists and documents the 429 with Retry-After
    paths = json.loads(fresh)["paths"]
    for route in abuse_limits.ROUTES:
        method, path = route.split(" ")
        responses = paths[path][method.lower()]["responses"]
        assert "Retry-After" in responses["429"]["headers"], route
