"""405 with `Allow` for a method a path lacks (ADR 23).

API Gateway routes on method and path, so `DELETE /api/v1/auth/login` reaches no function.
Every path of the REST API gets an `ANY` method with a mock integration that answers 405 and
the path's own methods: the gateway prefers a path's declared method to `ANY`, the mock needs
no function or permission, and it answers before the authorizer. On AWS the method is in the
API's body (`add_to_body`, called by infra/stacks.py); the local engine drops `ANY` from a
body, so the launcher puts the same method in by API (`apply`).
"""

from __future__ import annotations

import json
from typing import Any

# The methods API Gateway knows; `ANY` and `OPTIONS` (the gateway's preflight, when a path
# has CORS) are not listed as a path's own.
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
STATUS = "405"
PROBLEM = json.dumps(
    {
        "type": "urn:kumo:problem:method-not-allowed",
        "title": "Method not allowed",
        "status": 405,
        "detail": "This path does not answer that method; Allow lists the ones it does.",
    }
)
# The mock's status comes from its request template; the one response maps any of them to 405.
REQUEST_TEMPLATES = {"application/json": json.dumps({"statusCode": 405})}
RESPONSE_TEMPLATES = {"application/json": PROBLEM}


def allow(methods: list[str] | set[str]) -> str:
    """The `Allow` value for a path with these methods, in a fixed order."""
    upper = {method.upper() for method in methods}
    return ", ".join(method for method in HTTP_METHODS if method in upper)


def _header_values(allowed: str) -> dict[str, str]:
    # Static values are quoted, as API Gateway's mapping expressions want.
    return {
        "method.response.header.Allow": f"'{allowed}'",
        "method.response.header.Content-Type": "'application/problem+json'",
    }


def any_method(allowed: str) -> dict[str, Any]:
    """The `x-amazon-apigateway-any-method` of a swagger path with `allowed` methods."""
    return {
        "produces": ["application/problem+json"],
        "responses": {
            STATUS: {
                "description": "The path does not answer this method.",
                "headers": {"Allow": {"type": "string"}, "Content-Type": {"type": "string"}},
            }
        },
        "x-amazon-apigateway-integration": {
            "type": "mock",
            "passthroughBehavior": "when_no_templates",
            "requestTemplates": REQUEST_TEMPLATES,
            "responses": {
                "default": {
                    "statusCode": STATUS,
                    "responseParameters": _header_values(allowed),
                    "responseTemplates": RESPONSE_TEMPLATES,
                }
            },
        },
    }


def add_to_body(body: dict[str, Any]) -> None:
    """Give every path of a swagger body its 405 method, in place."""
    for path_item in body.get("paths", {}).values():
        allowed = allow([method for method in path_item if method.upper() in HTTP_METHODS])
        if allowed:
            path_item["x-amazon-apigateway-any-method"] = any_method(allowed)


def apply(gateway: Any, api_id: str) -> int:
    """Put the 405 method on every resource of a deployed REST API with methods of its own,
    replacing one put there before (its path may have gained a method); the number done.
    A deployment makes them live."""
    done = 0
    paginator = gateway.get_paginator("get_resources")
    for page in paginator.paginate(restApiId=api_id, embed=["methods"]):
        for resource in page["items"]:
            methods = set(resource.get("resourceMethods") or {})
            allowed = allow(methods)
            if not allowed:
                continue
            where = {"restApiId": api_id, "resourceId": resource["id"], "httpMethod": "ANY"}
            if "ANY" in methods:
                gateway.delete_method(**where)
            gateway.put_method(**where, authorizationType="NONE")
            gateway.put_method_response(
                **where,
                statusCode=STATUS,
                responseParameters={name: False for name in _header_values(allowed)},
            )
            gateway.put_integration(
                **where,
                type="MOCK",
                passthroughBehavior="WHEN_NO_TEMPLATES",
                requestTemplates=REQUEST_TEMPLATES,
            )
            gateway.put_integration_response(
                **where,
                statusCode=STATUS,
                selectionPattern="",
                responseParameters=_header_values(allowed),
                responseTemplates=RESPONSE_TEMPLATES,
            )
            done += 1
    return done
