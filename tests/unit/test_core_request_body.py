"""Bad request bodies through the real handlers (ADR 0023): a wrong media type is a 415, text
that is not JSON or nests too deep a 400, an oversized body a 413, a body the OpenAPI document
forbids a 422; never a 500, and nothing is stored."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from kumo.core import request_body
from kumo.core.errors import JsonTooDeep, MalformedJson, PayloadTooLarge, UnsupportedMediaType
from kumo.identity.models import UserModel

from tests.support.factories import device_principal, new_fleet, new_principal, unique_email
from tests.unit.conftest import FakeContext, load_handler

PROBLEM = "urn:kumo:problem:"
DEEP = "[" * 10_000 + "]" * 10_000  # 20 KB
Call = Callable[..., dict[str, Any]]

# (function, path) of routes that read a JSON body, signed-out ones and a device's.
PUBLIC_BODY_ROUTES = [
    ("identity/login", "/api/v1/auth/login"),
    ("identity/register", "/api/v1/auth/register"),
    ("identity/refresh", "/api/v1/auth/refresh"),
    ("identity/password_forgot", "/api/v1/auth/password/forgot"),
    ("identity/password_reset", "/api/v1/auth/password/reset"),
    ("identity/logout", "/api/v1/auth/logout"),
]
DEVICE = device_principal("01HZREQUESTBODYDEVICE00001", "01HZREQUESTBODYORG00000001")


def _post(call_api: Call, function: str, path: str, raw: str, **kwargs: Any) -> dict[str, Any]:
    principal = DEVICE if function.startswith("telemetry/") else None
    return call_api(function, "POST", path, raw_body=raw, principal=principal, **kwargs)


def _is_problem(response: dict[str, Any], status: int, slug: str) -> None:
    assert response["statusCode"] == status, response["json"]
    assert response["multiValueHeaders"]["Content-Type"] == ["application/problem+json"]
    assert response["json"]["type"] == PROBLEM + slug
    assert response["json"]["status"] == status


# --- 415 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "path"),
    [
        ("identity/login", "/api/v1/auth/login"),
        ("identity/register", "/api/v1/auth/register"),
        ("orgs/create_org", "/api/v1/orgs"),
    ],
)
def test_json_route_refuses_text_plain_with_415(call_api, function, path):
    # Given a valid JSON body labelled text/plain
    body = json.dumps({"email": "ada@example.com", "password": "x", "name": "Acme"})

    # When posting it
    response = _post(call_api, function, path, body, headers={"Content-Type": "text/plain"})

    # Then it is a 415 that says which type to send
    _is_problem(response, 415, "unsupported-media-type")
    assert response["json"]["accepted"] == ["application/json"]
    assert response["multiValueHeaders"]["Accept"] == ["application/json"]
    assert "text/plain" in response["json"]["detail"]


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_json_route_refuses_form_bodies_with_415(call_api, content_type):
    # Given a form body, which Powertools would otherwise parse as a form
    # When posting it to a JSON route
    response = _post(
        call_api,
        "identity/login",
        "/api/v1/auth/login",
        "email=ada%40example.com&password=x",
        headers={"Content-Type": content_type},
    )

    # Then it is a 415
    _is_problem(response, 415, "unsupported-media-type")


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize(
    "content_type", ["", "application/json; charset=utf-8", "application/merge-patch+json"]
)
def test_json_body_without_or_with_a_json_type_is_read(call_api, content_type):
    # Given a register body with no Content-Type, a charset, or a +json type
    email = unique_email()
    body = json.dumps({"email": email, "password": "correct horse 42", "display_name": "Ada"})

    # When registering
    response = _post(
        call_api,
        "identity/register",
        "/api/v1/auth/register",
        body,
        headers={"Content-Type": content_type},
    )

    # Then the body is read as JSON
    assert response["statusCode"] == 201, response["json"]
    assert response["json"]["email"] == email


# --- 400 ---------------------------------------------------------------------------------


def test_malformed_json_is_a_400_with_line_and_column(call_api):
    # Given JSON with a missing comma on its second line
    body = '{"email": "ada@example.com"\n "password": "x"}'

    # When logging in with it
    response = _post(call_api, "identity/login", "/api/v1/auth/login", body)

    # Then the problem says where the text went wrong, not a character offset as a field
    _is_problem(response, 400, "malformed-json")
    assert (response["json"]["line"], response["json"]["column"]) == (2, 2)
    assert "line 2, column 2" in response["json"]["detail"]
    assert "errors" not in response["json"]


@pytest.mark.parametrize(
    ("function", "path"),
    [*PUBLIC_BODY_ROUTES, ("telemetry/device_post_readings", "/api/v1/device/readings")],
)
def test_json_nested_10000_deep_is_a_400(call_api, function, path):
    # Given 10,000 nested arrays (20 KB), past the parser's recursion limit
    # When posting them
    response = _post(call_api, function, path, DEEP)

    # Then it is a 400 naming the depth limit, not a RecursionError
    _is_problem(response, 400, "json-too-deep")
    assert response["json"]["max_depth"] == request_body.MAX_DEPTH


def test_json_nested_just_past_the_limit_is_a_400(call_api):
    # Given a readings body one level deeper than allowed, shallow enough to parse
    nested: Any = 1
    for _ in range(request_body.MAX_DEPTH + 1):
        nested = {"v": nested}

    # When a device posts it
    response = _post(
        call_api, "telemetry/device_post_readings", "/api/v1/device/readings", json.dumps(nested)
    )

    # Then the depth is refused before the telemetry contract reads it
    _is_problem(response, 400, "json-too-deep")


def test_body_that_is_not_utf8_is_a_400(call_api):
    # Given a base64-encoded body whose bytes are Latin-1, not UTF-8
    raw = base64.b64encode('{"email": "caf\xe9@example.com"}'.encode("latin-1")).decode()

    # When posting it
    response = call_api(
        "identity/login", "POST", "/api/v1/auth/login", raw_body=raw, is_base64=True
    )

    # Then it is malformed, not a decoding crash
    _is_problem(response, 400, "malformed-json")


# --- 413 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "path"),
    [
        ("identity/login", "/api/v1/auth/login"),
        ("telemetry/device_post_readings", "/api/v1/device/readings"),
    ],
)
def test_body_over_the_limit_is_a_413(call_api, function, path):
    # Given a JSON body one byte over the default limit
    padding = "x" * (request_body.MAX_BODY_BYTES - len('{"email": ""}') + 1)
    body = json.dumps({"email": padding})

    # When posting it, even labelled with a wrong type
    response = _post(call_api, function, path, body, headers={"Content-Type": "text/plain"})

    # Then it is a 413 naming the limit
    _is_problem(response, 413, "payload-too-large")
    assert response["json"]["max_bytes"] == request_body.MAX_BODY_BYTES


# --- 422: what the OpenAPI document forbids ----------------------------------------------


@pytest.mark.parametrize("body", ["[null, null]", '[{"refresh_token": null}]', "[]"])
def test_logout_body_that_is_an_array_is_a_422(call_api, body):
    # Given an array where the spec says an object (Powertools would take its first element)
    # When logging out with it
    response = _post(call_api, "identity/logout", "/api/v1/auth/logout", body)

    # Then it is refused
    _is_problem(response, 422, "validation-error")
    assert response["json"]["errors"] == [
        {"field": "body", "message": "must be a JSON object, not an array"}
    ]


def test_login_body_wrapped_in_an_array_is_a_422(call_api):
    # Given a valid login body inside an array
    body = json.dumps([{"email": "ada@example.com", "password": "x"}])

    # When logging in
    response = _post(call_api, "identity/login", "/api/v1/auth/login", body)

    # Then the array is not unwrapped
    _is_problem(response, 422, "validation-error")


@pytest.mark.parametrize(
    ("field", "value"), [("cookie", 0), ("remember_me", "true"), ("password", 123)]
)
def test_login_fields_take_only_their_json_type(call_api, field, value):
    # Given a login body with a value of another JSON type than the spec's
    body = {"email": "ada@example.com", "password": "x", field: value}

    # When logging in
    response = _post(call_api, "identity/login", "/api/v1/auth/login", json.dumps(body))

    # Then the field is refused rather than coerced
    _is_problem(response, 422, "validation-error")
    assert [e["field"] for e in response["json"]["errors"]] == [field]


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("certificate", [0, 1, "true", None])
def test_register_device_certificate_must_be_a_boolean(call_api, certificate):
    # Given an org owner and a certificate flag that is no JSON boolean
    fleet = new_fleet(devices=0)
    body = {"org_id": fleet.org_id, "name": "probe", "certificate": certificate}

    # When registering a device with it
    response = call_api(
        "devices/register_device", "POST", "/api/v1/devices", body=body, principal=fleet.owner
    )

    # Then it is a 422 on that field
    _is_problem(response, 422, "validation-error")
    assert [e["field"] for e in response["json"]["errors"]] == ["certificate"]


@pytest.mark.parametrize("version", [False, True, "3", 1.5])
def test_device_config_report_version_must_be_an_integer(call_api, version):
    # Given a device reporting its applied config with a version that is no JSON integer
    body = {"version": version, "config": {}}

    # When reporting it
    response = call_api(
        "devices/device_report_config",
        "POST",
        "/api/v1/device/config/applied",
        body=body,
        principal=DEVICE,
    )

    # Then it is a 422 on that field
    _is_problem(response, 422, "validation-error")
    assert [e["field"] for e in response["json"]["errors"]] == ["version"]


@pytest.mark.usefixtures("aws")
def test_refused_register_stores_no_user(call_api):
    # Given a register body labelled text/plain, and one nested too deep
    email = unique_email()
    body = json.dumps({"email": email, "password": "correct horse 42", "display_name": "Ada"})

    # When posting both
    wrong_type = _post(
        call_api,
        "identity/register",
        "/api/v1/auth/register",
        body,
        headers={"Content-Type": "text/plain"},
    )
    deep = _post(call_api, "identity/register", "/api/v1/auth/register", DEEP)

    # Then both are refused and no user was stored
    assert (wrong_type["statusCode"], deep["statusCode"]) == (415, 400)
    assert list(UserModel.scan()) == []


# --- the module itself -------------------------------------------------------------------


def test_decode_json_takes_the_deepest_allowed_nesting():
    # Given arrays nested exactly MAX_DEPTH deep
    text = "[" * request_body.MAX_DEPTH + "]" * request_body.MAX_DEPTH

    # When decoding, Then they are read; one more level is refused
    assert request_body.decode_json(text) is not None
    with pytest.raises(JsonTooDeep):
        request_body.decode_json("[" + text + "]")


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("{", MalformedJson),
        ("", MalformedJson),
        ('{"a": NaN', MalformedJson),
        ("x" * (request_body.MAX_BODY_BYTES + 1), PayloadTooLarge),
    ],
)
def test_decode_json_refuses_what_is_not_a_json_document(raw, error):
    with pytest.raises(error):
        request_body.decode_json(raw)


@pytest.mark.parametrize(
    ("content_type", "json_type"),
    [
        (None, True),
        ("APPLICATION/JSON", True),
        ("application/problem+json", True),
        ("text/json", False),
        ("text/plain; charset=utf-8", False),
        ("application/jsonp", False),
    ],
)
def test_json_media_types(content_type, json_type):
    assert request_body.is_json_media_type(content_type) is json_type
    if not json_type:
        with pytest.raises(UnsupportedMediaType):
            request_body.check_media_type(content_type)


# --- WebSocket frames --------------------------------------------------------------------


@pytest.fixture
def frame(load_event: Callable[[str], dict[str, Any]]) -> Callable[[str, str], list[Any]]:
    """Send one raw frame to a WebSocket route's handler; answers what it posted back."""
    from kumo.core.ids import new_id
    from kumo.realtime import fanout

    from tests.support.aws import posted_to
    from tests.support.factories import principal_for

    def send(function: str, body: str) -> list[Any]:
        fanout.management_client.cache_clear()
        connection = f"conn-{new_id()}"
        event = load_event("realtime/subscribe")
        event["requestContext"]["connectionId"] = connection
        event["requestContext"]["authorizer"] = principal_for(new_id())
        event["body"] = body
        result = load_handler(f"realtime/{function}").lambda_handler(event, FakeContext())
        assert result == {"statusCode": 200}
        return posted_to(connection)

    return send


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize(
    ("function", "body"),
    [
        ("ws_default", "[" * 5_000 + "]" * 5_000),
        ("ws_subscribe", '{"action": "subscribe", "id": "r1", "x": ' + DEEP + "}"),
        ("ws_unsubscribe", '{"action": "unsubscribe", "x": ' + DEEP + "}"),
    ],
)
def test_websocket_frame_nested_too_deep_gets_an_error_frame(frame, function, body):
    # Given a frame nested thousands of levels deep
    # When a route's handler receives it
    frames = frame(function, body)

    # Then the connection gets one error frame with a 400 problem, and stays open
    assert [f["event"] for f in frames] == ["error"]
    assert frames[0]["problem"]["type"] == PROBLEM + "json-too-deep"
    assert frames[0]["problem"]["status"] == 400


@pytest.mark.usefixtures("aws")
def test_websocket_frame_that_is_not_json_gets_a_malformed_json_frame(frame):
    # Given a subscribe frame cut short
    # When the subscribe handler receives it
    frames = frame("ws_subscribe", '{"action": "subscribe", "channel": ')

    # Then the error frame says where the JSON broke
    assert frames[0]["problem"]["type"] == PROBLEM + "malformed-json"
    assert frames[0]["problem"]["line"] == 1


# --- every request schema: the validation refuses what the document's types forbid -------

# Values of another JSON type than each schema type, which lax parsing would coerce.
WRONG_TYPE: dict[str, list[Any]] = {
    "integer": [False, True, "3", 1.5],
    "number": [False, "1.5"],
    "boolean": [0, 1, "true", "false"],
    "string": [1, True],
}


def _request_models() -> list[type[Any]]:
    """Every model a request body of docs/openapi.json names, found in kumo.<context>.schemas."""
    import importlib

    from tests.support.template import ROOT

    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    names = set()
    for item in document["paths"].values():
        for operation in item.values():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                ref = content["schema"].get("$ref", "")
                names.add(ref.rsplit("/", 1)[-1])
    contexts = ("alerts", "chat", "devices", "identity", "media", "orgs", "tasks", "telemetry")
    modules = [importlib.import_module(f"kumo.{context}.schemas") for context in contexts]
    found = {n: getattr(m, n) for m in modules for n in names if hasattr(m, n)}
    assert set(found) == names - {""}, f"request models not found: {names - set(found)}"
    return [found[name] for name in sorted(found)]


def _cases() -> list[Any]:
    cases = []
    for model in _request_models():
        for name, schema in model.model_json_schema()["properties"].items():
            allowed = {s.get("type") for s in schema.get("anyOf", [schema])}
            for json_type in sorted(allowed & set(WRONG_TYPE)):
                for value in WRONG_TYPE[json_type]:
                    wrong = {"integer": {"integer", "number"}, "number": {"integer", "number"}}
                    if not any(
                        _json_type(value) in wrong.get(t, {t}) for t in allowed if t is not None
                    ):
                        cases.append(
                            pytest.param(
                                model, name, value, id=f"{model.__name__}.{name}={value!r}"
                            )
                        )
    return cases


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "number" if isinstance(value, float) else "string"


@pytest.mark.parametrize(("model", "field", "value"), _cases())
def test_request_model_refuses_a_value_its_schema_type_forbids(model, field, value):
    # Given a request model and a value of a JSON type its schema does not allow for a field
    from pydantic import ValidationError

    # When validating a body carrying that value, as the resolver does (Python mode)
    with pytest.raises(ValidationError) as raised:
        model.model_validate({field: value})

    # Then that field is among the errors
    assert field in {str(e["loc"][0]) for e in raised.value.errors() if e["loc"]}


# --- every route with a body, from the OpenAPI document ----------------------------------


def _body_routes() -> list[Any]:
    """(function directory, method, path) of every operation that takes a request body."""
    from infra import openapi
    from tests.support.template import ROOT

    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    routes = []
    for route in openapi.api_routes():
        operation = document["paths"][route.path][route.method]
        if "requestBody" in operation:
            function = route.code_dir.relative_to(ROOT / "functions").as_posix().strip("/")
            routes.append(
                pytest.param(
                    function,
                    route.method.upper(),
                    route.path,
                    id=f"{route.method.upper()} {route.path}",
                )
            )
    assert len(routes) > 20
    return routes


@pytest.mark.parametrize(("function", "method", "path"), _body_routes())
def test_every_body_route_answers_415_to_text_plain(call_api, function, method, path):
    # Given any route that reads a body, and a JSON object sent as text/plain
    concrete = re.sub(r"\{[^}]+\}", "01HZREQUESTBODYPATHID00001", path)
    principal = DEVICE if path.startswith("/api/v1/device/") else new_principal()

    # When calling it
    response = call_api(
        function,
        method,
        concrete,
        resource=path,
        raw_body='{"name": "x"}',
        headers={"Content-Type": "text/plain"},
        principal=principal,
    )

    # Then the body is refused before anything reads it: a 415, not a 500
    _is_problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize(
    "text",
    [
        '{"note": "' + "[" * 100 + '"}',  # brackets inside a string are text
        '{"note": "\\"' + "{" * 100 + '"}',  # after an escaped quote, still inside the string
        json.dumps({"readings": [{"ts": n, "metrics": {"t": 1.5}} for n in range(200)]}),
    ],
    ids=["brackets-in-a-string", "escaped-quote", "wide-but-shallow"],
)
def test_decode_json_counts_only_the_nesting_of_arrays_and_objects(text):
    assert request_body.decode_json(text) == json.loads(text)
