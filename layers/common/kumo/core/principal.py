"""Who is calling: the principal the API authorizer put in the request context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from kumo.core.errors import Forbidden, Unauthorized

PrincipalKind = Literal["user", "device"]
PLATFORM_ROLES = ("user", "tutor", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    subject_id: str
    roles: tuple[str, ...]
    email: str = ""
    org_id: str = ""

    @property
    def user_id(self) -> str:
        if self.kind != "user":
            raise Forbidden("This route is for users, not devices.")
        return self.subject_id

    @property
    def device_id(self) -> str:
        if self.kind != "device":
            raise Forbidden("This route is for devices, with their API key.")
        return self.subject_id

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def require_role(self, role: str) -> None:
        if not self.has_role(role):
            raise Forbidden(f"This route needs the {role} role.")

    def to_context(self) -> dict[str, str]:
        """Authorizer context: API Gateway only carries flat string values."""
        return {
            "kind": self.kind,
            "subject_id": self.subject_id,
            "roles": ",".join(self.roles),
            "email": self.email,
            "org_id": self.org_id,
        }

    @classmethod
    def from_context(cls, context: dict[str, Any] | None) -> Principal:
        if not context or not context.get("subject_id"):
            raise Unauthorized("Missing or invalid credentials.")
        kind = context.get("kind", "user")
        if kind not in ("user", "device"):
            raise Unauthorized("Missing or invalid credentials.")
        roles = tuple(r for r in str(context.get("roles", "")).split(",") if r)
        return cls(
            kind=kind,
            subject_id=str(context["subject_id"]),
            roles=roles,
            email=str(context.get("email", "")),
            org_id=str(context.get("org_id", "")),
        )
