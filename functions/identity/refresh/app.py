"""POST /api/v1/auth/refresh: rotate the refresh token (from the body or the session cookie)."""

from aws_lambda_powertools.event_handler import Response
from kumo.core.api import http_handler, make_resolver
from kumo.core.errors import Unauthorized
from kumo.identity import authn, service
from kumo.identity.http import session_response
from kumo.identity.schemas import RefreshRequest, TokenPairOut

app = make_resolver()


@app.post(
    "/api/v1/auth/refresh",
    tags=["auth"],
    responses={
        200: {"description": "Rotated", "content": {"application/json": {"model": TokenPairOut}}}
    },
)
def refresh(body: RefreshRequest | None = None) -> Response[str]:
    from_cookie = authn.read_cookie(app.current_event.headers, authn.REFRESH_COOKIE)
    raw = (body and body.refresh_token) or from_cookie
    if not raw:
        raise Unauthorized("Send refresh_token in the body or the session cookie.")
    session = service.refresh_session(raw)
    return session_response(app, session, cookie=not (body and body.refresh_token))


lambda_handler = http_handler(app)
