"""JSON request bodies as every API route and WebSocket message reads them (ADR 0023).

A body is refused before any model sees it when it is not JSON by its media type (415), larger
than the route allows (413), not JSON by its text (400 `malformed-json`, with line and column),
or nested deeper than MAX_DEPTH (400 `json-too-deep`). Python's parser recurses once per level,
so a deep enough document would otherwise end as a RecursionError, which is a 500: the depth
is counted on the text, before parsing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from itertools import accumulate
from typing import Any, Final

from kumo.core.errors import JsonTooDeep, MalformedJson, PayloadTooLarge, UnsupportedMediaType

# One default for every route; API Gateway's own ceiling is 10 MB and Lambda's 6 MB. Kumo's
# largest legitimate bodies (a telemetry batch, a device's config) stay well below it.
MAX_BODY_BYTES: Final = 128 * 1024
# Deeper than any of Kumo's schemas by far (a config or command's params is free-form JSON),
# and far shallower than the parser's recursion limit.
MAX_DEPTH: Final = 32
JSON_MEDIA_TYPE: Final = "application/json"


def is_json_media_type(content_type: str | None) -> bool:
    """`application/json` or any `+json` type, parameters aside. No Content-Type at all counts
    as JSON: `curl -d` sends a form type, but scripts that set no header at all are common."""
    if not content_type or not content_type.strip():
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == JSON_MEDIA_TYPE or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def check_media_type(content_type: str | None) -> None:
    if not is_json_media_type(content_type):
        media_type = (content_type or "").split(";", 1)[0].strip()
        raise UnsupportedMediaType(
            f"This route reads JSON; send the body as {JSON_MEDIA_TYPE}, not {media_type}.",
            headers={"Accept": JSON_MEDIA_TYPE},
            accepted=[JSON_MEDIA_TYPE],
        )


def raw_bytes(body: str | None, *, base64_encoded: bool) -> bytes:
    """The bytes the client sent (API Gateway base64-encodes binary media types)."""
    if not body:
        return b""
    if not base64_encoded:
        return body.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as error:
        raise MalformedJson("The body is not valid base64.") from error


# What the depth is read from: brackets, quotes and backslashes (a translation table, which
# runs at C speed), then strings taken out whole so the brackets inside them do not count.
_SKELETON = {code: None for code in range(128) if chr(code) not in '[]{}"\\'}
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_PLAIN_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _nests_deeper_than(text: str, limit: int) -> bool:
    """Whether the text's arrays and objects nest past `limit`, judged before parsing and
    without recursion: the brackets outside strings, counted."""
    if text.count("[") + text.count("{") <= limit:
        return False
    skeleton = text.translate(_SKELETON)
    if "\\" in skeleton:  # an escaped quote may sit in a string: take strings from the text
        skeleton = _STRING.sub("", text).translate(_SKELETON)
    brackets = _NOT_BRACKET.sub("", _PLAIN_STRING.sub("", skeleton))
    # The running depth, by C-implemented iterators: one pass, no Python loop per bracket.
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def decode_json(
    data: bytes | str, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """The JSON value of a body, or the 413/400 problem that says why there is none."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise PayloadTooLarge(
            f"The body is {len(raw)} bytes; this route takes at most {max_bytes} bytes.",
            max_bytes=max_bytes,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedJson(
            f"The body is not UTF-8 (byte {error.start} cannot be decoded).", position=error.start
        ) from error
    if _nests_deeper_than(text, max_depth):
        raise _too_deep(max_depth)
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise MalformedJson(
            f"The body is not valid JSON: {error.msg} at line {error.lineno}, "
            f"column {error.colno}.",
            line=error.lineno,
            column=error.colno,
        ) from error
    except RecursionError as error:  # only if the count above were wrong; never a 500
        raise _too_deep(max_depth) from error
    return value


def _no_constant(name: str) -> Any:
    # Python's parser reads NaN and Infinity, which JSON does not have.
    raise MalformedJson(f"The body is not valid JSON: {name} is not a JSON value.")


def _too_deep(max_depth: int) -> JsonTooDeep:
    return JsonTooDeep(
        f"The body nests arrays and objects more than {max_depth} levels deep.",
        max_depth=max_depth,
    )


def read_json_body(
    body: str | None,
    *,
    content_type: str | None,
    base64_encoded: bool = False,
    max_bytes: int = MAX_BODY_BYTES,
) -> Any:
    """A request's JSON body, None when it sent none; the checks above in their order."""
    raw = raw_bytes(body, base64_encoded=base64_encoded)
    if len(raw) > max_bytes:
        # Size first: a client told "wrong type" would otherwise resend the same large body.
        return decode_json(raw, max_bytes=max_bytes)
    if not raw.strip():
        return None
    check_media_type(content_type)
    return decode_json(raw, max_bytes=max_bytes)
