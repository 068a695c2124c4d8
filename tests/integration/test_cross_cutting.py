"""Problem details, health and the OpenAPI document, as a client sees them."""

from __future__ import annotations

from typing import Any

import requests

from tests.integration.conftest import Api


def test_validation_errors_are_problem_details_listing_fields(api: Api) -> None:
    answer = api.post("/api/v1/auth/register", json={"email": "not-an-address", "password": 5})
    assert answer.status_code == 422
    assert answer.headers["Content-Type"] == "application/problem+json"
    body = answer.json()
    assert body["type"] == "urn:kumo:problem:validation-error"
    assert body["request_id"]
    fields = {error["field"] for error in body["errors"]}
    assert {"email", "password", "display_name"} <= fields


def test_unknown_route_is_a_404_problem(api: Api) -> None:
    answer = api.get("/api/v1/no-such-thing")
    assert answer.status_code == 404
    assert answer.json()["type"] == "urn:kumo:problem:not-found"


def test_health_checks_dependencies(api: Api) -> None:
    answer = api.get("/api/v1/health")
    assert answer.status_code == 200
    checks = answer.json()["checks"]
    assert checks and all(check["status"] == "ok" for check in checks.values())


def test_openapi_document_lists_the_routes(endpoints: dict[str, Any]) -> None:
    document = requests.get(endpoints["openapi"], timeout=10).json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/auth/login" in document["paths"]
    assert "/api/v1/users/me" in document["paths"]
