"""POST /api/v1/auth/verify-email/resend: send a new verification e-mail, if one is owed."""

from kumo.core.api import http_handler, make_resolver, source_ip
from kumo.identity import service
from kumo.identity.schemas import AcceptedOut, EmailRequest

app = make_resolver()


@app.post("/api/v1/auth/verify-email/resend", status_code=202, tags=["auth"])
def resend_verification(body: EmailRequest) -> AcceptedOut:
    service.resend_verification(body.email, source_ip=source_ip(app))
    return AcceptedOut(
        detail="If the account exists and is unverified, a new e-mail is on its way."
    )


lambda_handler = http_handler(app)
