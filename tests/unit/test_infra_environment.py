"""infra.environment: the variables a function reads, found from the kumo modules it imports."""

from __future__ import annotations

from infra.environment import FUNCTIONS, handlers, kumo_modules, variables_of


def test_every_handler_is_found():
    # Given the functions folder
    # Then every function directory with an app.py is listed, the authorizer among them
    found = {path.parent.name for path in handlers()}
    assert {"authorizer", "get_me", "webhook_worker", "ingest_telemetry"} <= found


def test_modules_include_lazy_and_transitive_imports():
    # Given the ingestion handler, which reaches alerts through the telemetry service
    modules = {
        path.relative_to(FUNCTIONS.parent).as_posix()
        for path in kumo_modules(FUNCTIONS / "telemetry" / "ingest_telemetry" / "app.py")
    }

    # Then its transitive kumo modules are found
    assert "layers/common/kumo/core/config.py" in modules
    assert any(m.startswith("layers/common/kumo/alerts/") for m in modules)


def test_webhook_worker_never_reads_the_signing_key():
    # Given the webhook worker, which signs nothing with the JWT key
    variables = variables_of(FUNCTIONS / "tasks" / "webhook_worker" / "app.py")

    # Then its variables are its own: the tasks table and webhook settings, no key secret
    assert "TASKS_TABLE" in variables
    assert "WEBHOOK_MAX_ATTEMPTS" in variables
    assert "JWT_KEY_SECRET_ID" not in variables


def test_liveness_reads_no_setting():
    assert variables_of(FUNCTIONS / "core" / "liveness" / "app.py") == []


def test_one_place_gives_every_setting_a_value_outside_lambda() -> None:
    from kumo.core.config import variables

    from infra.environment import environment_for

    environment = environment_for("x", account="123456789012", websocket_url="https://ws")
    required = {env.variable for env in variables().values() if env.default is None}
    assert required <= set(environment), sorted(required - set(environment))
    assert environment["MAIL_QUEUE_URL"] == (
        "https://sqs.us-east-1.amazonaws.com/123456789012/kumo-x-mail"
    )
    assert environment["DATA_BUCKET"] == "kumo-x-data-123456789012"
    local = environment_for("x", account="0", queue_base="http://127.0.0.1:4566/0")
    assert local["WEBHOOK_DLQ_URL"] == "http://127.0.0.1:4566/0/kumo-x-webhooks-dlq"


def _reading(variable: str) -> set[str]:
    """The functions given `variable`: those whose reachable code reads it (infra.access)."""
    from infra.access import variables_used

    return {
        handler.parent.relative_to(FUNCTIONS).as_posix()
        for handler in handlers()
        if variable in variables_used(handler)
    }


def test_only_functions_that_push_to_websockets_read_the_management_url():
    # Those that post to connections (fanout, replies on the socket), and no others:
    # not $connect or $disconnect, not the alert reads
    assert _reading("WEBSOCKET_MANAGEMENT_URL") == {
        "alerts/delete_alert_rule",
        "alerts/update_alert_rule",
        "telemetry/device_post_readings",
        "telemetry/ingest_telemetry",
        "devices/mark_offline",
        "realtime/ws_default",
        "realtime/ws_subscribe",
        "realtime/ws_unsubscribe",
        "chat/delete_channel",
        "chat/delete_message",
        "chat/edit_message",
        "chat/invite_to_channel",
        "chat/post_message",
        "chat/remove_channel_member",
        "chat/ws_send_message",
        "chat/ws_presence",
        "chat/ws_typing",
        "chat/sweep_presence",
        "realtime/push_shard",
        "chat/ws_draw",
    }


def test_only_functions_that_mint_or_verify_tokens_read_the_jwt_key():
    assert _reading("JWT_KEY_SECRET_ID") == {
        "identity/authorizer",
        "identity/login",
        "identity/refresh",
    }


def test_the_mailer_reads_no_webhook_or_websocket_setting():
    variables = variables_of(FUNCTIONS / "tasks" / "mailer" / "app.py")

    assert "MAIL_SENDER" in variables
    assert not {"WEBSOCKET_MANAGEMENT_URL", "JWT_KEY_SECRET_ID"} & set(variables)
