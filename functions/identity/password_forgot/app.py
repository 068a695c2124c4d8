"""POST /api/v1/auth/password/forgot: mail a reset token; never tells if the account exists."""

from kumo.core.api import http_handler, make_resolver, source_ip
from kumo.identity import service
from kumo.identity.schemas import AcceptedOut, EmailRequest

app = make_resolver()


@app.post("/api/v1/auth/password/forgot", status_code=202, tags=["auth"])
def forgot_password(body: EmailRequest) -> AcceptedOut:
    service.forgot_password(body.email, source_ip=source_ip(app))
    return AcceptedOut(detail="If an account uses this address, a reset e-mail is on its way.")


lambda_handler = http_handler(app)
