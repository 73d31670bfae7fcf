"""The authenticated staff member a handler acts for."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.audit import Actor
from gateway.auth.permissions import Role, allows


@dataclass(frozen=True)
class StaffIdentity:
    """Who is calling the staff API, as proven by their token.

    Attributes:
        id: the token's public id (``k7q2m4x9abcd``), shown by ``nofu token list``.
        name: the staff member's name given at ``nofu token create``.
        role: the token's role.
        request_id: the HTTP request this identity was established for (for the audit log).
    """

    id: str
    name: str
    role: Role
    request_id: str | None = None

    def can(self, permission: str) -> bool:
        return allows(self.role, permission)

    @property
    def actor(self) -> Actor:
        """This identity as the actor of an audit record."""
        return Actor(id=f"staff:{self.id}", name=self.name, request_id=self.request_id)
