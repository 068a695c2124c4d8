"""How sessions travel over HTTP: a JSON token pair, or HTTP-only cookies for browsers."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from kumo.core.config import get_settings
from kumo.identity.authn import ACCESS_COOKIE, REFRESH_COOKIE
from kumo.identity.schemas import SessionOut, TokenPairOut, user_out
from kumo.identity.service import Session

# Under the prefix the API is served at (refresh_cookie_path): browsers send the refresh
# token to the auth routes only.
REFRESH_COOKIE_PATH = "/api/v1/auth"


def refresh_cookie_path(app: APIGatewayRestResolver) -> str:
    """/api/v1/auth under the path prefix the client called the API with.

    API Gateway's requestContext.path is the path as called, the route (`path`) at its end:
    `/prod/api/v1/auth/login` on the execute-api URL (the stage comes first), `/api/v1/...`
    on a custom domain mapped at its root. The local engine serves the API under
    `/_aws/execute-api/<api id>/<stage>` but reports `/<stage>/...` as AWS does: the
    deployment gives functions the part before the stage (API_PATH_PREFIX, empty on AWS)."""
    event: dict[str, Any] = app.current_event.raw_event
    route = str(event.get("path") or "")
    called = str((event.get("requestContext") or {}).get("path") or route)
    prefix = called[: -len(route)] if route and called.endswith(route) else ""
    return f"{get_settings().api_path_prefix}{prefix}{REFRESH_COOKIE_PATH}"


def _cookie(name: str, value: str, path: str, max_age: int) -> Cookie:
    return Cookie(
        name=name,
        value=value,
        path=path,
        secure=True,
        http_only=True,
        same_site=SameSite.LAX_MODE,
        max_age=max_age,
    )


def session_response(
    app: APIGatewayRestResolver, session: Session, *, cookie: bool, status_code: int = 200
) -> Response[str]:
    if not cookie:
        body = TokenPairOut(
            access_token=session.access_token,
            refresh_token=session.refresh_token,
            expires_in=session.expires_in,
            refresh_expires_in=session.refresh_expires_in,
        )
        return Response(
            status_code=status_code,
            content_type="application/json",
            body=body.model_dump_json(),
            headers={"Cache-Control": "no-store"},
        )
    cookies = [
        _cookie(ACCESS_COOKIE, session.access_token, "/", get_settings().access_token_seconds),
        _cookie(
            REFRESH_COOKIE,
            session.refresh_token,
            refresh_cookie_path(app),
            session.refresh_expires_in,
        ),
    ]
    body_out = SessionOut(user=user_out(session.user), expires_in=session.expires_in)
    return Response(
        status_code=status_code,
        content_type="application/json",
        body=body_out.model_dump_json(),
        headers={"Cache-Control": "no-store"},
        cookies=cookies,
    )


def cleared_cookies(app: APIGatewayRestResolver) -> list[Cookie]:
    return [
        _cookie(ACCESS_COOKIE, "", "/", 0),
        _cookie(REFRESH_COOKIE, "", refresh_cookie_path(app), 0),
    ]
