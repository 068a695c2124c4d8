"""Settings read once from the environment, failing loudly when a variable is missing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kumo.core.config import ConfigurationError, get_settings, variables


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Re-read settings in this test; the cache is cleared again before the env is restored."""
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_missing_variable_fails_when_read_naming_it(environment):
    # Given a required variable unset and another one empty
    environment.delenv("TASKS_TABLE")
    environment.setenv("MAIL_SENDER", "")

    # When reading each of them
    # Then each read names its own variable
    settings = get_settings()
    with pytest.raises(ConfigurationError, match=r"missing environment variable: TASKS_TABLE$"):
        _ = settings.tasks_table
    with pytest.raises(ConfigurationError, match=r"missing environment variable: MAIL_SENDER$"):
        _ = settings.mail_sender


def test_settings_a_function_does_not_read_need_not_exist(environment):
    # Given a function deployed with only the identity table
    environment.delenv("TASKS_TABLE")
    environment.delenv("JWT_KEY_SECRET_ID")

    # When it reads what it has
    # Then nothing about the others is in the way
    assert get_settings().identity_table == "kumo-test-identity"


def test_every_setting_names_a_distinct_variable():
    # Given the declared settings
    names = [env.variable for env in variables().values()]

    # Then no two settings share a variable, and each is upper snake case
    assert len(names) == len(set(names))
    assert all(name == name.upper() and " " not in name for name in names)


def test_signing_keys_are_named_never_held(environment):
    # Given the settings behind the signing keys
    names = {env.variable for env in variables().values()}

    # Then functions are handed the secrets' ids and a cache period, not a key
    assert {"JWT_KEY_SECRET_ID", "CURSOR_KEY_SECRET_ID", "SIGNING_KEY_CACHE_SECONDS"} <= names
    assert "JWT_SECRET" not in names
    assert get_settings().signing_key_cache_seconds == 300


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
    # Given a setting already read
    first = get_settings()
    assert first.stage == "test"

    # When the environment changes afterwards
    environment.setenv("KUMO_STAGE", "changed")

    # Then the same settings object is still answered
    assert get_settings() is first
    assert get_settings().stage == "test"
