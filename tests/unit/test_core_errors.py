"""RFC 7807 problem details, as every API function answers errors."""

from __future__ import annotations

import pytest
from kumo.core.errors import Conflict, problem, problem_for

from tests.support.factories import principal_for

REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"  # events/api/request.json
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


def test_problem_for_domain_error_has_rfc7807_shape():
    # Given a domain error with an extra member
    error = Conflict("Already there.", field="email")

    # When turning it into a problem
    body = problem_for(error, instance="/api/v1/things", request_id="req-1")

    # Then it has the type URN, the HTTP status and the extra member
    assert body == {
        "type": "urn:kumo:problem:conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "Already there.",
        "instance": "/api/v1/things",
        "request_id": "req-1",
        "field": "email",
    }


def test_problem_leaves_out_unknown_instance_and_request_id():
    # Given neither an instance nor a request id
    # When building a problem
    body = problem(status=400, slug="bad-request", title="Bad request", detail="No.")

    # Then those members are absent rather than null
    assert set(body) == {"type", "title", "status", "detail"}


def test_api_problem_for_missing_principal_has_every_member(call_api):
    # Given a request without an authorizer context
    # When calling a protected route
    response = call_api("identity/get_me", "GET", "/api/v1/users/me")

    # Then the 401 is a problem+json naming the path and the request
    assert response["statusCode"] == 401
    assert response["multiValueHeaders"]["Content-Type"] == ["application/problem+json"]
    assert set(response["json"]) == PROBLEM_KEYS
    assert response["json"]["type"] == "urn:kumo:problem:unauthorized"
    assert response["json"]["status"] == 401
    assert response["json"]["instance"] == "/api/v1/users/me"
    assert response["json"]["request_id"] == REQUEST_ID


@pytest.mark.usefixtures("aws")
def test_api_problem_for_unknown_record_is_not_found(call_api):
    # Given a principal whose user does not exist
    principal = principal_for("01HZCOREERRORSNOSUCHUSER01")

    # When reading its profile
    response = call_api("identity/get_me", "GET", "/api/v1/users/me", principal=principal)

    # Then it is a not-found problem
    assert response["statusCode"] == 404
    assert response["json"]["type"] == "urn:kumo:problem:not-found"
    assert set(response["json"]) == PROBLEM_KEYS


def test_api_problem_for_unknown_route_is_not_found(call_api):
    # Given a path the function has no route for
    # When calling it
    response = call_api("identity/get_me", "GET", "/api/v1/nowhere")

    # Then it is a not-found problem for that path
    assert response["statusCode"] == 404
    assert response["multiValueHeaders"]["Content-Type"] == ["application/problem+json"]
    assert response["json"]["instance"] == "/api/v1/nowhere"


def test_api_problem_for_invalid_body_lists_fields(call_api):
    # Given a body missing two required fields
    # When registering with it
    response = call_api(
        "identity/register", "POST", "/api/v1/auth/register", body={"email": "not-an-address"}
    )

    # Then the validation problem lists each field once with a message
    assert response["statusCode"] == 422
    assert response["json"]["type"] == "urn:kumo:problem:validation-error"
    assert set(response["json"]) == PROBLEM_KEYS | {"errors"}
    fields = {e["field"] for e in response["json"]["errors"]}
    assert fields == {"email", "password", "display_name"}
    assert all(e["message"] for e in response["json"]["errors"])
