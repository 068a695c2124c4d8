"""Request and response bodies of /api/v1/auth, /api/v1/users and /api/v1/admin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, Field

from kumo.core.schemas import DisplayName, Email, StrictModel, Token

if TYPE_CHECKING:
    from kumo.identity.models import AuditEventModel, UserModel

Role = Literal["user", "tutor", "admin"]
Password = Annotated[str, Field(min_length=1, max_length=128)]


class RegisterRequest(StrictModel):
    email: Email
    password: Password
    display_name: DisplayName


class EmailRequest(StrictModel):
    email: Email


class TokenRequest(StrictModel):
    token: Token


class LoginRequest(StrictModel):
    email: Email
    password: Password
    cookie: bool = Field(default=False, description="Set the tokens as HTTP-only cookies.")
    remember_me: bool = Field(default=False, description="Refresh for 30 days instead of 1 hour.")


class RefreshRequest(StrictModel):
    refresh_token: Token | None = Field(
        default=None, description="Omit when the refresh token travels in the session cookie."
    )


class PasswordResetRequest(StrictModel):
    token: Token
    new_password: Password


class UpdateMeRequest(StrictModel):
    display_name: DisplayName | None = None
    current_password: Password | None = None
    new_password: Password | None = None
    avatar_media_id: Annotated[str, Field(min_length=26, max_length=26)] | None = Field(
        default=None,
        description="A ready file of purpose `avatar` that the caller uploaded; null removes it.",
    )


class AdminUpdateUserRequest(StrictModel):
    role: Role | None = None
    active: bool | None = None


class UserOut(BaseModel):
    id: str
    email: str
    display_name: str
    role: Role
    active: bool
    email_verified: bool
    created_at: str
    # Its links come from GET /api/v1/media/{id}.
    avatar_media_id: str | None = None


class TokenPairOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a scheme name, not a secret)
    expires_in: int
    refresh_expires_in: int


class SessionOut(BaseModel):
    """Answer to a cookie login: the tokens went into cookies, not the body."""

    user: UserOut
    expires_in: int


class AuditEventOut(BaseModel):
    id: str
    event: str
    at: str
    actor_id: str | None
    subject_id: str | None
    source_ip: str | None
    detail: dict[str, str]


class AcceptedOut(BaseModel):
    status: Literal["accepted"] = "accepted"
    detail: str


def user_out(user: UserModel) -> UserOut:
    return UserOut(
        id=user.user_id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,  # type: ignore[arg-type]  # only valid roles are ever stored
        active=user.active,
        email_verified=user.email_verified,
        created_at=user.created_at,
        avatar_media_id=user.avatar_media_id,
    )


def audit_event_out(event: AuditEventModel) -> AuditEventOut:
    return AuditEventOut(
        id=event.sk.rsplit("#", 1)[-1],
        event=event.event,
        at=event.at,
        actor_id=event.actor_id,
        subject_id=event.subject_id,
        source_ip=event.source_ip,
        detail=event.detail.as_dict(),
    )
