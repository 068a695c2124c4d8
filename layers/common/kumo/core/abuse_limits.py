"""Every abuse limit Kumo applies, in one place (docs/adr/0024). The mechanism is
`kumo.core.rate_limit`; each context spends these in its own table.

`ROUTES` says which routes spend which limits; the OpenAPI document declares their 429
from it (infra/openapi.py).

Mail limits count requests whether or not the address has an account, so a 429 tells
nothing about accounts. Sign-in limits count password checks: a unit is spent before the
hash is checked and handed back when the password was right, so concurrent guesses cannot
overtake the limit and a real owner's sign-ins cost nothing. The per-account limit is a
slowdown, not a lock: it needs guesses from more sources than one (a single source is held
to LOGIN_PER_ACCOUNT_SOURCE, below it) and lasts five minutes at most.

Per-source limits are generous: a school or an office signs in from one address. They stop
one machine, not a crowd; on AWS the WAF rule (template parameter `WafRateLimit`) stops floods
before any function runs.
"""

from __future__ import annotations

from kumo.core.rate_limit import Limit

HOUR = 3600
MINUTE = 60

FORGOT_PER_ADDRESS = Limit("forgot.address", 3, HOUR, "reset e-mails to one address")
FORGOT_PER_SOURCE = Limit("forgot.source", 30, HOUR, "reset requests from one source")
RESEND_PER_ADDRESS = Limit("resend.address", 3, HOUR, "verification e-mails to one address")
RESEND_PER_SOURCE = Limit("resend.source", 30, HOUR, "verification requests from one source")
REGISTER_PER_SOURCE = Limit("register.source", 300, HOUR, "sign-ups from one source")

LOGIN_PER_SOURCE = Limit("login.source", 100, 15 * MINUTE, "failed sign-ins from one source")
LOGIN_PER_ACCOUNT_SOURCE = Limit(
    "login.account-source", 5, 15 * MINUTE, "failed sign-ins to one account from one source"
)
LOGIN_PER_ACCOUNT = Limit("login.account", 10, 5 * MINUTE, "failed sign-ins to one account")

INVITE_PER_ADDRESS = Limit("invite.address", 3, HOUR, "invitations to one address")
INVITE_PER_INVITER = Limit("invite.inviter", 50, HOUR, "invitations from one user")

RUN_NOW_PER_USER = Limit("run-now.user", 20, HOUR, "manual task runs per user")
EXPORT_PER_USER = Limit("export.user", 30, HOUR, "exports per user")
COMMAND_PER_USER = Limit("command.user", 120, MINUTE, "device commands per user")
DEVICE_REGISTER_PER_USER = Limit("device-register.user", 30, HOUR, "device registrations per user")
UPLOAD_PER_USER = Limit("upload.user", 300, HOUR, "upload forms per user")
# Chat: a person types a message every few seconds at most; a script does not.
MESSAGE_PER_USER = Limit("message.user", 30, MINUTE, "chat messages per user")
MESSAGE_PER_CONNECTION = Limit("message.connection", 20, MINUTE, "chat messages per connection")
# A sketch's operations: a stroke is sent at pen-up, a few a second at most while drawing.
SKETCH_OP_PER_USER = Limit("sketch-op.user", 600, MINUTE, "sketch operations per user")
SKETCH_OP_PER_CONNECTION = Limit(
    "sketch-op.connection", 300, MINUTE, "sketch operations per connection"
)
# Live frames that are never stored: a heartbeat every 15 to 20 seconds, a typing notice every
# few seconds while typing.
PRESENCE_PER_CONNECTION = Limit("presence.connection", 12, MINUTE, "presence frames per connection")
TYPING_PER_CONNECTION = Limit("typing.connection", 30, MINUTE, "typing notices per connection")
# A channel's password: guesses are spent before the hash is checked, handed back when right.
CHANNEL_PASSWORD_PER_USER = Limit(
    "channel-password.user", 5, 15 * MINUTE, "wrong channel passwords per user and channel"
)

# Which routes spend which limits: each of these answers 429 with Retry-After when one is spent.
ROUTES: dict[str, tuple[Limit, ...]] = {
    "POST /api/v1/auth/password/forgot": (FORGOT_PER_ADDRESS, FORGOT_PER_SOURCE),
    "POST /api/v1/auth/verify-email/resend": (RESEND_PER_ADDRESS, RESEND_PER_SOURCE),
    "POST /api/v1/auth/register": (REGISTER_PER_SOURCE,),
    # Failed password checks only.
    "POST /api/v1/auth/login": (LOGIN_PER_SOURCE, LOGIN_PER_ACCOUNT_SOURCE, LOGIN_PER_ACCOUNT),
    "POST /api/v1/orgs/{org_id}/invitations": (INVITE_PER_ADDRESS, INVITE_PER_INVITER),
    "POST /api/v1/scheduled-tasks/{task_id}/run": (RUN_NOW_PER_USER,),
    "POST /api/v1/devices/{device_id}/exports": (EXPORT_PER_USER,),
    "POST /api/v1/devices/{device_id}/commands": (COMMAND_PER_USER,),
    "POST /api/v1/devices": (DEVICE_REGISTER_PER_USER,),
    "POST /api/v1/media/uploads": (UPLOAD_PER_USER,),
    "POST /api/v1/chat/channels/{channel_id}/messages": (MESSAGE_PER_USER,),
    "POST /api/v1/chat/channels/{channel_id}/join": (CHANNEL_PASSWORD_PER_USER,),
}

# The WebSocket routes that spend limits: their refusal is an error frame with the 429 problem.
SOCKET_ROUTES: dict[str, tuple[Limit, ...]] = {
    "send_message": (MESSAGE_PER_USER, MESSAGE_PER_CONNECTION),
    "draw": (SKETCH_OP_PER_USER, SKETCH_OP_PER_CONNECTION),
    "presence": (PRESENCE_PER_CONNECTION,),
    "typing": (TYPING_PER_CONNECTION,),
}
