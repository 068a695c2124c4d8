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

    # Then its variables are its own: the tasks table and webhook settings, no JWT_SECRET
    assert "TASKS_TABLE" in variables
    assert "WEBHOOK_MAX_ATTEMPTS" in variables
    assert "JWT_SECRET" not in variables


def test_liveness_reads_no_setting():
    assert variables_of(FUNCTIONS / "core" / "liveness" / "app.py") == []
