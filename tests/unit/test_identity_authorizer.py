"""The REST API's Lambda REQUEST authorizer: bearer JWT or kumo_access cookie."""

from __future__ import annotations

import pytest

from tests.support import factories

API_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*"
EMAIL = "authorizer-test@example.com"


@pytest.fixture
def user_id(aws) -> str:
    """A stored tutor: the authorizer checks that the token's session is still current."""
    return factories.verified_user(EMAIL, role="tutor")


def access_token(user_id: str, role: str = "tutor") -> str:
    return factories.access_token(user_id, role=role, email=EMAIL)


def test_authorizer_allows_valid_bearer_for_whole_api(authorize, user_id):
    # Given a valid access token in the Authorization header
    headers = {"Authorization": f"Bearer {access_token(user_id)}"}

    # When the authorizer runs
    result = authorize(headers)

    # Then the caller may invoke every route of the stage
    assert result["principalId"] == user_id
    assert result["policyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": API_ARN}],
    }


def test_authorizer_puts_principal_in_context(authorize, user_id):
    # Given a valid access token for a tutor
    headers = {"Authorization": f"Bearer {access_token(user_id, 'tutor')}"}

    # When the authorizer runs
    result = authorize(headers)

    # Then the context carries who is calling, as flat strings
    assert result["context"] == {
        "kind": "user",
        "subject_id": user_id,
        "roles": "tutor",
        "email": EMAIL,
        "org_id": "",
    }


def test_authorizer_accepts_lower_case_bearer_header(authorize, user_id):
    # Given the header name and scheme in lower case, as HTTP/2 clients send them
    headers = {"authorization": f"bearer {access_token(user_id)}"}

    # When the authorizer runs
    result = authorize(headers)

    # Then the caller is allowed
    assert result["principalId"] == user_id


def test_authorizer_allows_access_cookie(authorize, user_id):
    # Given a valid access token in the kumo_access cookie, among other cookies
    headers = {"Cookie": f"theme=dark; kumo_access={access_token(user_id)}; lang=en"}

    # When the authorizer runs
    result = authorize(headers)

    # Then the caller is allowed with the same principal
    assert result["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert result["context"]["subject_id"] == user_id


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
