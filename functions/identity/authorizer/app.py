"""The Lambda authorizer of the REST API and of WebSocket handshakes: a bearer JWT, the session
cookie or a device key (or `?token=` on a handshake) -> principal in the request context."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core.errors import Unauthorized
from kumo.identity import authn

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        headers = event.get("headers") or {}
        if event["methodArn"].endswith("/$connect"):  # the WebSocket API's handshake
            query = event.get("queryStringParameters") or {}
            principal = authn.authenticate_handshake(headers, query)
        else:
            principal = authn.authenticate(headers)
    except Unauthorized as error:
        logger.info("request refused", reason=error.detail)
        # The exact message API Gateway maps to a 401 (any other error is a 500).
        raise Exception("Unauthorized") from error
    logger.info("request authorized", subject_id=principal.subject_id, kind=principal.kind)
    # One policy for the whole API (or, for a device, its own routes) so a cached answer
    # serves every route the caller may use.
    api_arn = event["methodArn"].split("/", 2)
    routes = "*/api/v1/device/*" if principal.kind == "device" else "*"
    return {
        "principalId": principal.subject_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": f"{api_arn[0]}/{api_arn[1]}/{routes}",
                }
            ],
        },
        "context": principal.to_context(),
    }
