"""The REST API's Lambda REQUEST authorizer: bearer JWT or kumo_access cookie."""

from __future__ import annotations

import pytest

from tests.support import factories

API_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*"
USER_ID = "01HZAUTHORIZERTESTUSER0001"
EMAIL = "authorizer-test@example.com"


def access_token(role: str = "tutor") -> str:
    return factories.access_token(USER_ID, role=role, email=EMAIL)


def test_authorizer_allows_valid_bearer_for_whole_api(authorize):
    # Given a valid access token in the Authorization header
    headers = {"Authorization": f"Bearer {access_token()}"}

    # When the authorizer runs
    result = authorize(headers)

    # Then the caller may invoke every route of the stage
    assert result["principalId"] == USER_ID
    assert result["policyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": API_ARN}],
    }


def test_authorizer_puts_principal_in_context(authorize):
    # Given a valid access token for a tutor
    headers = {"Authorization": f"Bearer {access_token('tutor')}"}

    # When the authorizer runs
    result = authorize(headers)

    # Then the context carries who is calling, as flat strings
    assert result["context"] == {
        "kind": "user",
        "subject_id": USER_ID,
        "roles": "tutor",
        "email": EMAIL,
        "org_id": "",
    }


def test_authorizer_accepts_lower_case_bearer_header(authorize):
    # Given the header name and scheme in lower case, as HTTP/2 clients send them
    headers = {"authorization": f"bearer {access_token()}"}

    # When the authorizer runs
    result = authorize(headers)

    # Then the caller is allowed
    assert result["principalId"] == USER_ID


def test_authorizer_allows_access_cookie(authorize):
    # Given a valid access token in the kumo_access cookie, among other cookies
    headers = {"Cookie": f"theme=dark; kumo_access={access_token()}; lang=en"}

    # When the authorizer runs
    result = authorize(headers)

    # Then the caller is allowed with the same principal
    assert result["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert result["context"]["subject_id"] == USER_ID


def test_authorizer_refuses_missing_credentials(authorize):
    # Given neither an Authorization header nor a session cookie
    # When the authorizer runs
    # Then it raises the one error API Gateway maps to 401
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize({})


def test_authorizer_refuses_cookie_without_access_token(authorize):
    # Given cookies, but not kumo_access
    headers = {"Cookie": "theme=dark; kumo_refresh=abcdefghijklmnopqrstuvwxyz"}

    # When the authorizer runs
    # Then it is refused
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(headers)
