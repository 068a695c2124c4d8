"""Domain errors and their RFC 7807 problem details; the mapping to HTTP lives here only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "urn:kumo:problem:"


class KumoError(Exception):
    """An error a client can act on. Subclasses fix the status, type and title."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class BadRequest(KumoError):
    status, slug, title = 400, "bad-request", "Bad request"


class MalformedJson(BadRequest):
    slug, title = "malformed-json", "Malformed JSON"


class JsonTooDeep(BadRequest):
    slug, title = "json-too-deep", "JSON nested too deep"


class Unauthorized(KumoError):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(KumoError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(KumoError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(KumoError):
    status, slug, title = 409, "conflict", "Conflict"


class Gone(KumoError):
    status, slug, title = 410, "gone", "Gone"


class PayloadTooLarge(KumoError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(KumoError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(KumoError):
    status, slug, title = 422, "validation-error", "Validation failed"


def invalid(field: str, message: str) -> ValidationFailed:
    """A 422 about one field, its message both the detail and the field's error."""
    return ValidationFailed(message, errors=[{"field": field, "message": message}])


# Where Powertools says a request field came from; clients want the field itself.
_REQUEST_PARTS = ("body", "query", "path", "header")


def field_errors(errors: Iterable[Mapping[str, Any]], *, whole: str = "") -> list[dict[str, str]]:
    """Pydantic's errors as `[{field, message}]`, the field a dotted path; `whole` names an
    error about no one field (a model validator's)."""
    out: list[dict[str, str]] = []
    for error in errors:
        location = tuple(error.get("loc", ()))
        parts = [str(p) for p in location if p not in _REQUEST_PARTS]
        field = ".".join(parts) or (str(location[0]) if location else whole)
        out.append({"field": field, "message": str(error.get("msg", "invalid"))})
    return out


class TooManyRequests(KumoError):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class ServiceUnavailable(KumoError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


def problem(
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return body


def problem_for(
    error: KumoError, *, instance: str | None, request_id: str | None
) -> dict[str, Any]:
    return problem(
        status=error.status,
        slug=error.slug,
        title=error.title,
        detail=error.detail,
        instance=instance,
        request_id=request_id,
        **error.extra,
    )
