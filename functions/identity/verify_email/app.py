"""POST /api/v1/auth/verify-email: spend the token from the verification e-mail."""

from kumo.core.api import http_handler, make_resolver
from kumo.identity import service
from kumo.identity.schemas import TokenRequest, UserOut, user_out

app = make_resolver()


@app.post("/api/v1/auth/verify-email", tags=["auth"])
def verify_email(body: TokenRequest) -> UserOut:
    return user_out(service.verify_email(body.token))


lambda_handler = http_handler(app)
