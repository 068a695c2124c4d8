"""POST /api/v1/auth/password/reset: set a new password with the mailed token; ends sessions."""

from aws_lambda_powertools.event_handler import Response
from kumo.core.api import http_handler, make_resolver
from kumo.identity import service
from kumo.identity.schemas import PasswordResetRequest

app = make_resolver()


@app.post("/api/v1/auth/password/reset", status_code=204, tags=["auth"])
def reset_password(body: PasswordResetRequest) -> Response[None]:
    service.reset_password(body.token, body.new_password)
    return Response(status_code=204)


lambda_handler = http_handler(app)
