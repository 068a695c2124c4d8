"""Password policy and hashing (argon2id)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from kumo.core.errors import ValidationFailed

MIN_LENGTH = 10
MAX_LENGTH = 128


@cache
def _hasher() -> PasswordHasher:
    # argon2id with the library's RFC 9106 "low memory" profile: ~50 ms on a Lambda core.
    return PasswordHasher()


def check_policy(password: str, email: str, field: str = "password") -> None:
    problems = []
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        problems.append(f"must be {MIN_LENGTH} to {MAX_LENGTH} characters long")
    if not any(c.isalpha() for c in password) or not any(c.isdigit() for c in password):
        problems.append("must contain at least one letter and one digit")
    local_part = email.split("@", 1)[0]
    if len(local_part) >= 3 and local_part in password.lower():
        problems.append("must not contain your e-mail address")
    if problems:
        raise ValidationFailed(
            "The password does not meet the policy.",
            errors=[{"field": field, "message": message} for message in problems],
        )


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


@cache
def dummy_hash() -> str:
    """Verified against when the account does not exist, so timing does not tell."""
    return _hasher().hash("kumo-no-such-account-0")
