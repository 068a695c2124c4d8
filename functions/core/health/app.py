"""GET /api/v1/health: 200 when every dependency answers, 503 problem details otherwise."""

from typing import Any

from kumo.core import health
from kumo.core.api import http_handler, make_resolver
from kumo.core.errors import ServiceUnavailable

app = make_resolver()


@app.get("/api/v1/health", tags=["health"])
def get_health() -> dict[str, Any]:
    checks = health.check_dependencies()
    if any(c["status"] != "ok" for c in checks.values()):
        raise ServiceUnavailable("A dependency is not reachable.", checks=checks)
    return {"status": "ok", "checks": checks}


lambda_handler = http_handler(app)
