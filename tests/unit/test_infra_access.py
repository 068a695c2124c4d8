"""infra.access: what each function's code does to AWS resources, checked against the template.

The template is read through infra.template.template() only, so the check follows it when the
root and the contexts' stacks are merged there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.access import (
    RESOURCE_OF_VARIABLE,
    access_of,
    cross_context,
    excess,
    function_path,
    grants_of,
    missing_tables,
    table_owners,
)
from infra.environment import FUNCTIONS, handlers
from infra.template import template

# Tables of another context that functions use on purpose, and why (docs/adr/0022).
_TELEMETRY_ROUTES = (
    "create_export", "device_latest", "device_readings", "get_export", "list_device_archives",
    "list_exports",
)  # fmt: skip
_DEVICE_AND_ALERT_ROUTES = {
    *(f"devices/{name}" for name in (
        "delete_device", "get_device", "get_device_command", "get_device_config",
        "list_device_commands", "list_devices", "register_device", "rotate_device_key",
        "send_device_command", "set_device_config", "update_device",
    )),
    *(f"telemetry/{name}" for name in _TELEMETRY_ROUTES),
    *(f"alerts/{name}" for name in (
        "acknowledge_alert", "create_alert_rule", "delete_alert_rule", "get_alert",
        "get_alert_rule", "list_alert_rules", "list_alerts", "update_alert_rule",
    )),
}  # fmt: skip
_INGESTION = {"telemetry/ingest_telemetry", "telemetry/device_post_readings"}
_CHAT_ROUTES = {
    f"chat/{name}"
    for name in (
        "create_channel", "delete_channel", "delete_message", "edit_message", "get_channel",
        "invite_to_channel", "join_channel", "leave_channel", "list_channel_members",
        "list_channels", "list_messages", "mark_read", "post_message", "remove_channel_member",
        "update_channel", "ws_send_message", "get_presence", "ws_typing", "create_sketch",
        "list_sketches", "get_sketch", "replay_sketch", "list_sketch_strokes", "export_sketch_svg",
        "ws_draw",
    )
}  # fmt: skip
# Chat pushes to live subscribers, and unsubscribes those who left (kumo.chat.live).
_CHAT_PUSHERS = {
    f"chat/{name}"
    for name in (
        "delete_channel", "delete_message", "edit_message", "invite_to_channel", "leave_channel",
        "post_message", "remove_channel_member", "ws_send_message", "ws_presence", "ws_typing",
        "ws_draw",
        "sweep_presence",
    )
}  # fmt: skip
_MEDIA_ROUTES = {
    f"media/{name}"
    for name in ("delete_media", "get_media", "list_media", "media_usage", "request_upload")
}
DELIBERATE: dict[tuple[str, str], set[str]] = {
    # Membership and role checks: kumo.orgs.service.require_org_role, and the org's owners and
    # admins for alert e-mails; the health check reads every table it reports on.
    ("OrgsTable", "read"): _DEVICE_AND_ALERT_ROUTES
    | _MEDIA_ROUTES
    | _CHAT_ROUTES
    | _INGESTION
    | {"realtime/ws_subscribe", "realtime/ws_unsubscribe", "core/health"},
    # A device named by an alert rule or a subscription must be one the caller may see; the
    # authorizer checks device keys (a platform component, before any context runs).
    ("DevicesTable", "read"): {
        "telemetry/create_export",
        "telemetry/device_latest",
        "telemetry/device_readings",
        "telemetry/get_export",
        "telemetry/list_device_archives",
        "telemetry/list_exports",
        "alerts/create_alert_rule",
        "alerts/update_alert_rule",
        "realtime/ws_subscribe",
        "realtime/ws_unsubscribe",
        "identity/authorizer",
        "core/health",
    },
    # Ingestion marks the device seen (kumo.devices.service.mark_seen).
    ("DevicesTable", "write"): _INGESTION,
    # Pushes to live subscribers (kumo.realtime.fanout) drop connections that are gone.
    ("ConnectionsTable", "write"): {
        "alerts/delete_alert_rule",
        "alerts/update_alert_rule",
        "devices/mark_offline",
    }
    | _INGESTION
    | _CHAT_PUSHERS,
    # E-mails: kumo.tasks.service.enqueue_email stores the task, then queues its id only.
    ("TasksTable", "write"): {
        "identity/register",
        "identity/resend_verification",
        "identity/password_forgot",
        "orgs/invite_member",
    }
    | _INGESTION,
    # Alerts are evaluated on ingestion (ADR 13).
    ("AlertsTable", "write"): _INGESTION,
    # Health is a platform component: it reports on every table (and queue) the platform uses.
    ("IdentityTable", "read"): {"core/health"},
    ("TasksTable", "read"): {"core/health"},
    ("TelemetryTable", "read"): {"core/health"},
    ("AlertsTable", "read"): {"core/health"},
    ("ConnectionsTable", "read"): {"core/health"},
    # An avatar is checked by kumo.media.service.require_ready; a chat image's links are
    # given by kumo.media.service.links_of.
    ("MediaTable", "read"): {
        "core/health",
        "identity/update_me",
        "chat/edit_message",
        "chat/list_messages",
    },
    # A chat image is checked and held for its channel (kumo.media.service.hold).
    ("MediaTable", "write"): {"chat/post_message", "chat/ws_send_message"},
    # Subscribing to a chat channel needs its membership (kumo.chat.access.channel_org).
    ("ChatTable", "read"): {"core/health", "realtime/ws_subscribe", "realtime/ws_unsubscribe"},
}


def _functions() -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _name(handler: Path) -> str:
    return handler.parent.relative_to(FUNCTIONS).as_posix()


def test_no_function_holds_a_permission_its_code_does_not_use():
    # Given every function in the template
    resources = template()["Resources"]

    # When its Policies are compared with what its code reaches
    problems = [
        problem
        for name, function in _functions().items()
        for problem in excess(name, function, resources)
    ]

    # Then none grants a resource it never uses, or writes to one it only reads
    assert not problems, "\n".join(problems)


def test_every_table_a_function_uses_is_granted_as_it_uses_it():
    # Given every function in the template (the local engine does not enforce IAM)
    resources = template()["Resources"]

    # When the tables its code reads and writes are compared with its Policies
    problems = [
        problem
        for name, function in _functions().items()
        for problem in missing_tables(name, function, resources)
    ]

    # Then each is granted, for writing where the code writes
    assert not problems, "\n".join(problems)


def test_every_template_function_has_a_handler_the_check_reads():
    # Given the template's functions
    # Then each one's code is where the check looks for it
    for name, function in _functions().items():
        assert function_path(function["Properties"]["CodeUri"]).is_file(), name


def test_get_me_only_reads_the_identity_table():
    # Given GET /users/me, whose service module also registers users and queues e-mails
    used = access_of(FUNCTIONS / "identity" / "get_me" / "app.py")

    # Then only the profile read counts
    assert used == {"IdentityTable": "read"}


def test_registering_writes_the_e_mail_task_and_queues_it():
    used = access_of(FUNCTIONS / "identity" / "register" / "app.py")

    assert used == {"IdentityTable": "write", "MailQueue": "write", "TasksTable": "write"}


def test_a_delete_route_decorator_is_not_a_write():
    # Given DELETE /alert-rules/{id}, whose handler is decorated with `app.delete(...)`
    used = access_of(FUNCTIONS / "alerts" / "delete_alert_rule" / "app.py")

    # Then the org membership it checks is still a read
    assert used["OrgsTable"] == "read"
    assert used["AlertsTable"] == "write"


def test_a_writer_handed_the_bucket_by_its_caller_writes_it():
    # Given the export builder, whose upload class is given the bucket name by its caller
    used = access_of(FUNCTIONS / "telemetry" / "build_export" / "app.py")

    # Then the bucket counts as written
    assert used["DataBucket"] == "write"


def test_a_lazy_expiry_on_read_counts_as_a_write():
    # Given GET /devices/{id}/commands/{id}, which writes a pending command expired when due
    used = access_of(FUNCTIONS / "devices" / "get_device_command" / "app.py")

    assert used["DevicesTable"] == "write"


def test_a_managed_policy_grants_what_its_statements_name():
    # Given a function that pushes to WebSocket subscribers
    resources = template()["Resources"]
    grants = grants_of(resources["MarkOfflineFunction"], resources)

    # Then the push policy counts as writing the connections table and the WebSocket API
    pushed = {(g.resource, g.level) for g in grants if g.policy == "WebSocketPushPolicy"}
    assert pushed == {("ConnectionsTable", "write"), ("WebSocketApi", "write")}


def test_resource_variables_name_the_resources_the_template_gives_them():
    # Given every environment in the template (the Globals one, and each function's own)
    environments = [template().get("Globals", {}).get("Function", {}).get("Environment", {})]
    environments += [f["Properties"].get("Environment", {}) for f in _functions().values()]
    resources = template()["Resources"]

    # Then a variable that refers to one of Kumo's resources is one the analysis maps, to it
    for environment in environments:
        for variable, value in environment.get("Variables", {}).items():
            named = {str(v) for v in _refs(value)} & set(resources)
            if named:
                assert RESOURCE_OF_VARIABLE.get(variable) in named, variable


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = []
        for tag, inner in value.items():
            key = tag.removeprefix("Fn::")
            if key == "Ref":
                found.append(inner)
            elif key == "Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found += [part.split("}")[0] for part in text.split("${")[1:]]
            else:
                found += _refs(inner)
        return found
    if isinstance(value, list):
        return [ref for inner in value for ref in _refs(inner)]
    return []


def test_grants_read_both_spellings_of_the_short_tags():
    # Given one policy as each YAML loader may read `!GetAtt MailQueue.QueueName`
    short = {
        "Properties": {
            "Policies": [{"SQSSendMessagePolicy": {"QueueName": {"GetAtt": "MailQueue.QueueName"}}}]
        }
    }
    long = {
        "Properties": {
            "Policies": [
                {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["MailQueue", "QueueName"]}}}
            ]
        }
    }

    # Then both grant sending to the mail queue
    for function in (short, long):
        assert [(g.resource, g.level) for g in grants_of(function, {})] == [("MailQueue", "write")]


def test_tables_belong_to_the_context_whose_models_map_them():
    owners = table_owners()

    assert owners["IdentityTable"] == "identity"
    assert owners["TasksTable"] == "tasks"
    assert owners["ConnectionsTable"] == "realtime"


def test_every_table_of_another_context_is_used_on_purpose():
    # Given what each function's code does to tables of other contexts
    found = {
        (table, level, _name(handler))
        for handler in handlers()
        for table, level in cross_context(handler).items()
    }
    recorded = {(t, level, f) for (t, level), functions in DELIBERATE.items() for f in functions}

    # Then each one is recorded in ADR 22, and the record lists nothing that has gone
    assert found - recorded == set(), "not in docs/adr/0022: " + repr(sorted(found - recorded))
    assert recorded - found == set(), "no longer used: " + repr(sorted(recorded - found))
