"""Settings read once from the environment, failing loudly when a variable is missing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kumo.core.config import ConfigurationError, get_settings


@pytest.fixture(autouse=True)
def aws() -> None:
    """Overrides conftest's moto setup: nothing here touches AWS, so no tables are built."""


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Re-read settings in this test; the cache is cleared again before the env is restored."""
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_get_settings_lists_every_missing_variable(environment):
    # Given two required variables unset and one empty
    environment.delenv("JWT_SECRET")
    environment.delenv("TASKS_TABLE")
    environment.setenv("MAIL_SENDER", "")

    # When reading the settings
    # Then the error names all three, sorted
    with pytest.raises(ConfigurationError) as raised:
        get_settings()
    assert str(raised.value) == (
        "missing environment variables: JWT_SECRET, MAIL_SENDER, TASKS_TABLE"
    )


def test_get_settings_refuses_short_jwt_secret(environment):
    # Given a JWT secret shorter than 32 characters
    environment.setenv("JWT_SECRET", "too-short")

    # When reading the settings
    # Then it is refused
    with pytest.raises(ConfigurationError, match="JWT_SECRET must be at least 32 characters"):
        get_settings()


def test_get_settings_applies_defaults_and_strips_app_url(environment):
    # Given only the required variables, with a trailing slash on APP_URL
    for name in ("ACCESS_TOKEN_SECONDS", "REFRESH_TOKEN_SECONDS", "REFRESH_TOKEN_REMEMBER_SECONDS"):
        environment.delenv(name, raising=False)
    environment.setenv("APP_URL", "https://app.kumo.test/")

    # When reading the settings
    settings = get_settings()

    # Then the token lifetimes are the documented defaults
    assert (
        settings.access_token_seconds,
        settings.refresh_token_seconds,
        settings.refresh_token_remember_seconds,
    ) == (900, 3600, 30 * 24 * 3600)
    assert settings.app_url == "https://app.kumo.test"


def test_get_settings_reads_environment_once(environment):
    # Given settings already read
    first = get_settings()

    # When the environment changes afterwards
    environment.setenv("KUMO_STAGE", "changed")

    # Then the same settings object is still answered
    assert get_settings() is first
    assert get_settings().stage == "test"
