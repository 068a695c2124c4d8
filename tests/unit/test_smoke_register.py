from tests.unit.conftest import principal_for


def test_register_then_me(call_api):
    r = call_api("identity/register", "POST", "/api/v1/auth/register",
                 body={"email": " Ada@Example.com ", "password": "correct horse 42", "display_name": "Ada"})
    assert r["statusCode"] == 201, r
    assert r["json"]["email"] == "ada@example.com"
    me = call_api("identity/get_me", "GET", "/api/v1/users/me", principal=principal_for(r["json"]["id"]))
    assert me["json"]["id"] == r["json"]["id"]
    dup = call_api("identity/register", "POST", "/api/v1/auth/register",
                 body={"email": "ada@example.com", "password": "correct horse 42", "display_name": "Ada"})
    assert dup["statusCode"] == 409, dup
    bad = call_api("identity/register", "POST", "/api/v1/auth/register", body={"email": "x", "password": "a"})
    print(bad)
    assert bad["statusCode"] == 422
