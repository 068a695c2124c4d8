"""The Given of unit tests: people as the authorizer presents them, orgs with members,
registered devices, tokens, chat channels, WebSocket connections and their subscriptions.

Every builder makes fresh ids and addresses, so tests never share keys. Those that store
something need the `aws` fixture; `principal_for`, `device_principal`, `new_principal`,
`unique_email` and `access_token` store nothing. Kumo modules are imported inside the
builders: the unit conftest sets the environment before any of them is imported.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

PASSWORD = "correct horse 42"


def unique_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}@example.com"


def principal_for(user_id: str, role: str = "user", email: str = "") -> dict[str, str]:
    """The authorizer context a signed-in user's request carries."""
    return {
        "kind": "user",
        "subject_id": user_id,
        "roles": role,
        "email": email,
        "org_id": "",
        "principalId": user_id,
    }


def device_principal(device_id: str, org_id: str) -> dict[str, str]:
    """The authorizer context a device's request carries (its API key checked)."""
    return {
        "kind": "device",
        "subject_id": device_id,
        "roles": "device",
        "email": "",
        "org_id": org_id,
        "principalId": device_id,
    }


def new_principal(label: str = "user", role: str = "user") -> dict[str, str]:
    """A fresh user id with an address of its own; no user is stored."""
    from kumo.core.ids import new_id

    user_id = new_id()
    return principal_for(user_id, role, f"{label}-{user_id.lower()}@example.com")


def verified_user(email: str, *, role: str = "user") -> str:
    """A stored user who can sign in at once with PASSWORD; answers the user id."""
    from kumo.identity import service

    user = service.register(
        email=email, password=PASSWORD, display_name="Ada", role=role, verified=True
    )
    return str(user.user_id)


def access_token(user_id: str, *, role: str = "user", email: str = "ada@example.com") -> str:
    from kumo.identity import tokens

    return tokens.issue_access_token(user_id=user_id, email=email, role=role, session_epoch=0)


def new_org(owner_id: str, owner_email: str, name: str = "Acme") -> str:
    """An org created by its owner; answers its id."""
    from kumo.orgs import service

    org, _ = service.create_org(name=name, owner_id=owner_id, owner_email=owner_email)
    return str(org.org_id)


def add_member(org_id: str, user_id: str, email: str, role: str) -> None:
    """A membership as an accepted invitation leaves it.

    The only place the unit tests reach past the orgs service: its public way in is an
    invitation, which queues an e-mail that a test's Given has no business adding."""
    from kumo.orgs import service

    service._add_member(org_id, user_id, email, role)


def new_member(org_id: str, role: str) -> dict[str, str]:
    """A fresh user with `role` in the org, as the authorizer presents them."""
    principal = new_principal(role)
    add_member(org_id, principal["subject_id"], principal["email"], role)
    return principal


@dataclass(frozen=True)
class Device:
    device_id: str
    api_key: str
    thing_name: str | None  # with a certificate (MQTT) only


def register_device(
    org_id: str, owner_id: str, name: str = "probe", *, certificate: bool = False
) -> Device:
    """A device registered by an admin of the org."""
    from kumo.devices import service
    from kumo.devices.schemas import RegisterDeviceRequest

    request: Any = RegisterDeviceRequest(org_id=org_id, name=name, certificate=certificate)
    device, api_key, identity = service.register_device(user_id=owner_id, request=request)
    return Device(device.device_id, api_key, identity.thing_name if identity else None)


@dataclass(frozen=True)
class Fleet:
    """An org, its owner as the authorizer presents them, and its registered devices."""

    org_id: str
    owner: dict[str, str]
    devices: tuple[str, ...]

    @property
    def owner_id(self) -> str:
        return self.owner["subject_id"]

    def member(self, role: str) -> dict[str, str]:
        """A new member of this org with `role`."""
        return new_member(self.org_id, role)


def new_fleet(name: str = "Fleet", *, devices: int = 1) -> Fleet:
    """An org with a fresh owner and `devices` devices named probe-0, probe-1, …"""
    owner = new_principal("owner")
    org_id = new_org(owner["subject_id"], owner["email"], name)
    registered = tuple(
        register_device(org_id, owner["subject_id"], f"probe-{n}").device_id for n in range(devices)
    )
    return Fleet(org_id, owner, registered)


def new_channel(
    org_id: str,
    creator_id: str,
    *,
    name: str | None = None,
    visibility: str = "public",
    password: str | None = None,
) -> str:
    """A chat channel created by a member of the org (a fresh name unless `name` is given);
    answers its id. Its creator is its first member."""
    from kumo.chat import channels
    from kumo.chat.schemas import CreateChannelRequest

    request = CreateChannelRequest.model_validate(
        {
            "org_id": org_id,
            "name": name or f"room-{uuid.uuid4().hex[:12]}",
            "visibility": visibility,
            "password": password,
        }
    )
    return str(channels.create_channel(user_id=creator_id, request=request).channel_id)


def websocket_connection(user_id: str) -> str:
    """A fresh WebSocket connection of the user, as $connect stores it; answers its id."""
    from kumo.core.ids import new_id
    from kumo.core.principal import Principal
    from kumo.realtime import service

    connection_id = f"conn-{new_id()}"
    service.connect(connection_id, Principal.from_context(principal_for(user_id)))
    return connection_id


def websocket_subscribe(connection_id: str, user_id: str, channel: str, **ids: str) -> Any:
    """Subscribe the connection to `channel` (named by its `device_id`, `org_id` or
    `channel_id`) with the checks the ws_subscribe function passes; answers the ack."""
    from kumo.chat import access
    from kumo.core.principal import Principal
    from kumo.devices import service as devices
    from kumo.realtime import service
    from kumo.realtime.schemas import SubscriptionMessage

    message = SubscriptionMessage.model_validate({"action": "subscribe", "channel": channel, **ids})
    return service.subscribe(
        connection_id,
        Principal.from_context(principal_for(user_id)),
        message,
        device_org=devices.viewable_device_org,
        chat_org=access.channel_org,
    )


def reset_token(email: str) -> str:
    """The one-time token of the password-reset mail a forgotten password queues for `email`
    (the only mail task on the queue)."""
    import json

    from kumo.core import aws
    from kumo.core.config import get_settings
    from kumo.identity import service
    from kumo.tasks.models import EmailTaskModel, task_key

    service.forgot_password(email, source_ip="203.0.113.10")
    queue = get_settings().mail_queue_url
    (message,) = aws.sqs().receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    task = EmailTaskModel.get(task_key(json.loads(message["Body"])["task_id"]), "TASK")
    return str(task.params["token"])
