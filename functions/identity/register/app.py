"""POST /api/v1/auth/register: create an account and queue the verification e-mail."""

from kumo.core.api import http_handler, make_resolver, source_ip
from kumo.identity import service
from kumo.identity.schemas import RegisterRequest, UserOut, user_out

app = make_resolver()


@app.post("/api/v1/auth/register", status_code=201, tags=["auth"])
def register(body: RegisterRequest) -> UserOut:
    user = service.sign_up(
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        source_ip=source_ip(app),
    )
    return user_out(user)


lambda_handler = http_handler(app)
