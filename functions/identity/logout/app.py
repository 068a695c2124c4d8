"""POST /api/v1/auth/logout: revoke the session's token family and clear the cookies."""

from aws_lambda_powertools.event_handler import Response
from kumo.core.api import http_handler, make_resolver
from kumo.identity import authn, service
from kumo.identity.http import cleared_cookies
from kumo.identity.schemas import RefreshRequest

app = make_resolver()


@app.post("/api/v1/auth/logout", status_code=204, tags=["auth"])
def logout(body: RefreshRequest | None = None) -> Response[None]:
    from_cookie = authn.read_cookie(app.current_event.headers, authn.REFRESH_COOKIE)
    service.logout((body and body.refresh_token) or from_cookie)
    return Response(status_code=204, cookies=cleared_cookies(app))


lambda_handler = http_handler(app)
