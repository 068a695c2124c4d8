"""Request and response bodies of /api/v1/orgs and /api/v1/invitations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, Field

from kumo.core import clock
from kumo.core.schemas import DisplayName, Email, StrictModel, Token

if TYPE_CHECKING:
    from kumo.orgs.models import InvitationModel, MembershipModel, OrgModel

OrgRole = Literal["owner", "admin", "member", "viewer"]
# Nobody is invited as owner: ownership is granted by an owner to an existing member.
InvitableRole = Literal["admin", "member", "viewer"]


class CreateOrgRequest(StrictModel):
    name: DisplayName


# Days raw telemetry is kept before it expires and is archived to S3 (ADR 14).
DEFAULT_RETENTION_DAYS = 7
MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 365
RetentionDays = Annotated[int, Field(ge=MIN_RETENTION_DAYS, le=MAX_RETENTION_DAYS, strict=True)]


class UpdateOrgRequest(StrictModel):
    name: DisplayName | None = None
    # Applies to readings stored from then on; stored readings keep the expiry they got.
    telemetry_retention_days: RetentionDays | None = None


class InviteRequest(StrictModel):
    email: Email
    role: InvitableRole


class AcceptInvitationRequest(StrictModel):
    token: Token


class UpdateMemberRequest(StrictModel):
    role: OrgRole


class OrgOut(BaseModel):
    id: str
    name: str
    created_at: str
    role: OrgRole
    telemetry_retention_days: int


class MemberOut(BaseModel):
    user_id: str
    email: str
    role: OrgRole
    joined_at: str


class MembershipOut(MemberOut):
    org_id: str


class InvitationOut(BaseModel):
    id: str
    email: str
    role: InvitableRole
    expires_at: str
    # Accepted and revoked invitations are deleted, so every one a client sees is pending.
    status: Literal["pending"] = "pending"


def org_out(org: OrgModel, membership: MembershipModel) -> OrgOut:
    return OrgOut(
        id=org.org_id,
        name=org.name,
        created_at=org.created_at,
        role=membership.role,  # type: ignore[arg-type]  # only valid roles are ever stored
        telemetry_retention_days=retention_days(org),
    )


def retention_days(org: OrgModel) -> int:
    stored = org.telemetry_retention_days
    return DEFAULT_RETENTION_DAYS if stored is None else int(stored)


def member_out(membership: MembershipModel) -> MemberOut:
    return MemberOut(
        user_id=membership.user_id,
        email=membership.email,
        role=membership.role,  # type: ignore[arg-type]  # only valid roles are ever stored
        joined_at=membership.joined_at,
    )


def membership_out(membership: MembershipModel) -> MembershipOut:
    return MembershipOut(org_id=membership.org_id, **member_out(membership).model_dump())


def invitation_out(invitation: InvitationModel) -> InvitationOut:
    return InvitationOut(
        id=invitation.invitation_id,
        email=invitation.email,
        role=invitation.role,  # type: ignore[arg-type]  # only valid roles are ever stored
        expires_at=clock.utc_iso(invitation.expires_at),
    )
