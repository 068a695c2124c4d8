"""A method a path lacks answers 405 with `Allow` (infra/unsupported_methods.py, ADR 23), in the
REST API's compiled body for AWS. What the launcher puts on the local engine by API is tested
end to end (tests/integration/test_bad_input.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import unsupported_methods


@pytest.fixture(scope="module")
def api_body(compiled_stacks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (api,) = (
        resource
        for resource in compiled_stacks["template.yaml"]["Resources"].values()
        if resource["Type"] == "AWS::ApiGateway::RestApi"
    )
    body: dict[str, Any] = api["Properties"]["Body"]
    return body


def test_allow_lists_a_paths_methods_in_a_fixed_order() -> None:
    assert unsupported_methods.allow({"delete", "get", "PATCH"}) == "GET, PATCH, DELETE"
    assert unsupported_methods.allow({"ANY", "OPTIONS"}) == ""


def test_every_path_of_the_compiled_api_answers_405_for_the_rest(api_body: dict[str, Any]) -> None:
    # Given the REST API's body as compiled for AWS
    paths = api_body["paths"]
    assert len(paths) > 40

    for path, item in paths.items():
        # Then every path has a mock ANY method that lists exactly its own methods
        own = [method for method in item if method in ("get", "post", "put", "patch", "delete")]
        method = item["x-amazon-apigateway-any-method"]
        integration = method["x-amazon-apigateway-integration"]
        assert integration["type"] == "mock", path
        response = integration["responses"]["default"]
        assert response["statusCode"] == "405"
        allowed = response["responseParameters"]["method.response.header.Allow"]
        assert allowed == f"'{unsupported_methods.allow(own)}'", path
        # And it answers before any authorizer: no credentials are asked for a 405
        assert "security" not in method, path
        problem = json.loads(response["responseTemplates"]["application/json"])
        assert problem["status"] == 405


def test_the_login_path_allows_post_only(api_body: dict[str, Any]) -> None:
    item = api_body["paths"]["/api/v1/auth/login"]
    response = item["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"][
        "responses"
    ]["default"]
    assert response["responseParameters"]["method.response.header.Allow"] == "'POST'"
