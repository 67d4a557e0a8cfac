"""Organization users, the roles they can hold, and invitation requests.

The five roles are the documented list. Invited users are `Inactive` with an unconfirmed e-mail
until they would accept (which never happens in the stand-in); ids are plain integers, as in the
vendor's examples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from .bodies import Fields
from .timestamps import iso_seconds

AVAILABLE_ROLES = ("Administrator", "Manager", "Creator", "Reviewer", "Viewer")
# Deliberately loose, like [EmailAddress]: one @, something on each side, a dot in the domain.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass
class User:
    """One user of the organization and the workspaces they belong to."""

    user_id: int
    email: str
    role_name: str
    name: str
    created_at: datetime
    email_confirmed: bool = False
    status: str = "Inactive"
    workspace_ids: set[int] = field(default_factory=set)

    def view(self) -> dict[str, object]:
        """The documented user shape."""
        return {
            "id": self.user_id,
            "roleName": self.role_name,
            "name": self.name,
            "userName": self.email,
            "email": self.email,
            "createdAt": iso_seconds(self.created_at),
            "emailConfirmed": self.email_confirmed,
            "status": self.status,
        }


@dataclass(frozen=True)
class Invitation:
    """One `{"email", "roleName"}` entry of an invite request, role name canonicalised."""

    email: str
    role_name: str


def canonical_role(name: str) -> str | None:
    """The documented spelling of role `name` (matched case-insensitively), or None."""
    return next((role for role in AVAILABLE_ROLES if role.lower() == name.strip().lower()), None)


def parse_invitations(fields: Fields) -> list[Invitation]:
    """The `users` array of an invite request; raises `ValidationFailed` on any bad entry."""
    items = fields.array("users", required=True)
    if items is not None and not items:
        fields.fail("users", "At least one user is required.")
    invitations = [_parse_invitation(fields, item, index) for index, item in enumerate(items or [])]
    fields.check()
    return [invitation for invitation in invitations if invitation]


def _parse_invitation(fields: Fields, item: object, index: int) -> Invitation | None:
    if not isinstance(item, dict):
        fields.fail(f"users[{index}]", "Each user must be a JSON object.")
        return None
    entry = fields.nested(item, "users", index)
    email, role = entry.text("email", required=True), entry.text("roleName", required=True)
    if email is not None and not _EMAIL.fullmatch(email.strip()):
        entry.fail("email", "The Email field is not a valid e-mail address.")
    role_name = canonical_role(role) if role is not None else None
    if role is not None and role_name is None:
        entry.fail("roleName", "RoleName must be one of: " + ", ".join(AVAILABLE_ROLES) + ".")
    if email is None or role_name is None:
        return None
    return Invitation(email.strip(), role_name)
