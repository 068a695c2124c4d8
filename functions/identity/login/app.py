"""POST /api/v1/auth/login: a token pair, or HTTP-only session cookies with "cookie": true."""

from aws_lambda_powertools.event_handler import Response
from kumo.core.api import http_handler, make_resolver, source_ip
from kumo.identity import service
from kumo.identity.http import session_response
from kumo.identity.schemas import LoginRequest, TokenPairOut

app = make_resolver()


@app.post(
    "/api/v1/auth/login",
    tags=["auth"],
    responses={
        200: {"description": "Signed in", "content": {"application/json": {"model": TokenPairOut}}}
    },
)
def login(body: LoginRequest) -> Response[str]:
    session = service.login(
        email=body.email,
        password=body.password,
        remember=body.remember_me,
        source_ip=source_ip(app),
    )
    return session_response(app, session, cookie=body.cookie)


lambda_handler = http_handler(app)
