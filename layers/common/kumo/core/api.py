"""The HTTP adapter every API function shares: resolver, error mapping, principal, handler."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
    _is_or_contains_sequence,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from kumo.core import metrics, request_body
from kumo.core.errors import (
    PROBLEM_CONTENT_TYPE,
    KumoError,
    ValidationFailed,
    field_errors,
    problem,
    problem_for,
)
from kumo.core.principal import Principal

logger = Logger()

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def _request_id(app: APIGatewayRestResolver) -> str | None:
    context = app.current_event.raw_event.get("requestContext") or {}
    request_id = context.get("requestId")
    return str(request_id) if request_id else None


def problem_response(app: APIGatewayRestResolver, body: dict[str, Any]) -> Response[str]:
    return Response(
        status_code=int(body["status"]),
        content_type=PROBLEM_CONTENT_TYPE,
        body=json.dumps(body),
    )


class JsonBodyValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, reading the body through kumo.core.request_body.

    Powertools parses a body by itself: another media type raises an exception no handler
    maps (a 500), deep nesting a RecursionError (a 500), and a JSON array sent to a model
    is cut to its first element. Here the body is read once, for every route, the Kumo way."""

    def __init__(self, max_body_bytes: int) -> None:
        super().__init__()
        self.max_body_bytes = max_body_bytes

    def _get_body(self, app: Any) -> Any:
        event = app.current_event
        body = request_body.read_json_body(
            event.body,
            content_type=event.headers.get("content-type"),
            base64_encoded=bool(event.is_base64_encoded),
            max_bytes=self.max_body_bytes,
        )
        if isinstance(body, list):
            fields = app.context["_route"].dependant.body_params
            if len(fields) == 1 and not _is_or_contains_sequence(fields[0].field_info.annotation):
                raise ValidationFailed(
                    "The body must be a JSON object.",
                    errors=[{"field": "body", "message": "must be a JSON object, not an array"}],
                )
        return body


def make_resolver(*, max_body_bytes: int = request_body.MAX_BODY_BYTES) -> APIGatewayRestResolver:
    """A resolver with request validation and every error mapped to RFC 7807 once."""
    app = APIGatewayRestResolver(enable_validation=True)
    # Powertools adds the request validation it finds here to every route's middleware stack.
    app._request_validation_middleware = JsonBodyValidation(max_body_bytes)

    @app.exception_handler(KumoError)
    def _domain_error(error: KumoError) -> Response[str]:
        body = problem_for(error, instance=app.current_event.path, request_id=_request_id(app))
        response = problem_response(app, body)
        response.headers.update(error.headers)
        return response

    @app.exception_handler(RequestValidationError)
    def _validation_error(error: RequestValidationError) -> Response[str]:
        errors = field_errors(error.errors())
        body = problem(
            status=422,
            slug="validation-error",
            title="Validation failed",
            detail="The request has invalid fields.",
            instance=app.current_event.path,
            request_id=_request_id(app),
            errors=errors,
        )
        return problem_response(app, body)

    @app.not_found
    def _not_found(_: Exception) -> Response[str]:
        body = problem(
            status=404,
            slug="not-found",
            title="Not found",
            detail="No such route.",
            instance=app.current_event.path,
            request_id=_request_id(app),
        )
        return problem_response(app, body)

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[str]:
        logger.exception("unhandled error")
        body = problem(
            status=500,
            slug="internal-error",
            title="Internal error",
            detail="Something went wrong on our side; the request id helps us find it.",
            instance=app.current_event.path,
            request_id=_request_id(app),
        )
        return problem_response(app, body)

    return app


def current_principal(app: APIGatewayRestResolver) -> Principal:
    """The caller the authorizer established; absent means the route was not protected."""
    context = (app.current_event.raw_event.get("requestContext") or {}).get("authorizer")
    return Principal.from_context(context)


def source_ip(app: APIGatewayRestResolver) -> str | None:
    identity = (app.current_event.raw_event.get("requestContext") or {}).get("identity") or {}
    ip = identity.get("sourceIp")
    return str(ip) if ip else None


def http_handler(app: APIGatewayRestResolver) -> Handler:
    """The Lambda entry point for an API function: correlation id, one access log line, and
    the metrics its services counted."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @metrics.flushed
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        started = time.perf_counter()
        response = app.resolve(event, context)
        if response.get("body") is None:
            # An empty 204 body as "", not null: the local engine fails on null (ADR 0004).
            response["body"] = ""
        logger.info(
            "request handled",
            method=event.get("httpMethod"),
            route=event.get("resource"),
            status=response.get("statusCode"),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    return lambda_handler
