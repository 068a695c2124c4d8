"""GET /api/v1/health/live: answers while the API can run code at all; imports nothing."""

from typing import Any


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    # One line of output per call: the local engine waits for log output otherwise.
    print('{"level":"INFO","message":"liveness probe"}')
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": '{"status":"ok"}',
    }
