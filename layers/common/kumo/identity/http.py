"""How sessions travel over HTTP: a JSON token pair, or HTTP-only cookies for browsers."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from kumo.core.config import get_settings
from kumo.identity.authn import ACCESS_COOKIE, REFRESH_COOKIE
from kumo.identity.schemas import SessionOut, TokenPairOut, user_out
from kumo.identity.service import Session

REFRESH_COOKIE_PATH = "/api/v1/auth"


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


def session_response(session: Session, *, cookie: bool, status_code: int = 200) -> Response[str]:
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
            REFRESH_COOKIE, session.refresh_token, REFRESH_COOKIE_PATH, session.refresh_expires_in
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


def cleared_cookies() -> list[Cookie]:
    return [
        _cookie(ACCESS_COOKIE, "", "/", 0),
        _cookie(REFRESH_COOKIE, "", REFRESH_COOKIE_PATH, 0),
    ]
