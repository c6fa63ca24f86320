"""Who a service acts for: a user in one facility with a role there."""

from __future__ import annotations

from dataclasses import dataclass

from app.models import Facility, Role, User


@dataclass(frozen=True)
class MemberContext:
    """A user acting in one facility with a role there."""

    user: User
    facility: Facility
    role: Role

    def can(self, role: Role) -> bool:
        """True when the member's role includes `role`."""
        return self.role.at_least(role)
