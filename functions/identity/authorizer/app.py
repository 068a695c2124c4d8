"""The Lambda authorizer of the REST API and of WebSocket handshakes: a bearer JWT, the session
cookie or a device key (or `?token=` on a handshake) -> principal in the request context."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from kumo.core.config import get_settings
from kumo.core.errors import Unauthorized
from kumo.core.principal import Principal
from kumo.devices import keys
from kumo.identity import authn

logger = Logger()


def _policy(principal_id: str, effect: str, resource: str) -> dict[str, Any]:
    statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
    return {
        "principalId": principal_id,
        "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
    }


def _principal(token: str) -> Principal:
    # A device key is the devices context's to check, a user token identity's.
    if keys.looks_like_key(token):
        return keys.authenticate_device(token, table=get_settings().devices_table)
    return authn.user_principal(token)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    method_arn: str = event["methodArn"]
    handshake = method_arn.endswith("/$connect")  # the WebSocket API's
    headers = event.get("headers") or {}
    try:
        if handshake:
            query = event.get("queryStringParameters") or {}
            principal = _principal(authn.handshake_credential(headers, query))
        else:
            principal = _principal(authn.credential(headers))
    except Unauthorized as error:
        logger.info("request refused", reason=error.detail)
        if handshake:
            # A handshake is refused with a Deny (403): the local engine answers a raised
            # error with a 500, and a browser sees no status on a failed handshake anyway.
            return _policy("anonymous", "Deny", method_arn)
        # The exact message API Gateway maps to a 401 (any other error is a 500).
        raise Exception("Unauthorized") from error
    logger.info("request authorized", subject_id=principal.subject_id, kind=principal.kind)
    # One policy for the whole API (or, for a device, its own routes) so a cached answer
    # serves every route the caller may use.
    api_arn = method_arn.split("/", 2)
    routes = "*/api/v1/device/*" if principal.kind == "device" else "*"
    answer = _policy(principal.subject_id, "Allow", f"{api_arn[0]}/{api_arn[1]}/{routes}")
    answer["context"] = principal.to_context()
    return answer
