"""The organizations a stand-in serves, as configured: a name, a client id and a secret each.

SmartDocumentor gives every organization (tenant) one client id and one secret, and the token
issued for them scopes every call to that organization. The stand-in serves any number of them,
each given on the command line as `--organization NAME:CLIENT_ID:CLIENT_SECRET`: the secret is
everything after the second colon (so it may contain colons), the client id cannot contain one.
Without the flag there is one organization, `demo`, with `--client-id` and `--client-secret`.

Every function here is pure. Messages never contain a secret: a malformed flag value is not
quoted at all, since a value with a colon missing may have the secret where the name should be.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

DEFAULT_ORGANIZATION_NAME: Final = "demo"
NAME_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_-]*")
FORMAT: Final = "NAME:CLIENT_ID:CLIENT_SECRET"


class OrganizationError(ValueError):
    """An organization is configured wrongly; the message is one line without any secret."""


@dataclass(frozen=True)
class OrganizationSettings:
    """One organization: its name (for people and logs) and the credentials of its client."""

    name: str
    client_id: str
    client_secret: str = field(repr=False)


def parse_organization(text: str) -> OrganizationSettings:
    """`NAME:CLIENT_ID:CLIENT_SECRET` as settings; raises `OrganizationError`."""
    name, sep1, rest = text.partition(":")
    client_id, sep2, secret = rest.partition(":")
    if not (sep1 and sep2):
        raise OrganizationError(f"expected {FORMAT} (the value is not shown: it may hold a secret)")
    organization = OrganizationSettings(name, client_id, secret)
    problem = organization_problem(organization)
    if problem:
        raise OrganizationError(problem)
    return organization


def organization_problem(organization: OrganizationSettings) -> str | None:
    """What is wrong with one organization, or None; names it, never shows its secret."""
    if not NAME_PATTERN.fullmatch(organization.name):
        shown = f"{organization.name!r} " if organization.name else ""
        return f"name {shown}must match {NAME_PATTERN.pattern} (in {FORMAT})"
    if not organization.client_id.strip():
        return f"organization {organization.name!r}: the client id must not be empty"
    if not organization.client_secret.strip():
        return f"organization {organization.name!r}: the client secret must not be empty"
    return None


def organizations_problem(organizations: object) -> str | None:
    """What is wrong with a tuple of organizations, or None: each must be valid, and names and
    client ids unique (the token endpoint knows an organization by its client id)."""
    if not isinstance(organizations, tuple) or not all(
        isinstance(o, OrganizationSettings) for o in organizations
    ):
        return "must be a tuple of OrganizationSettings"
    for organization in organizations:
        problem = organization_problem(organization)
        if problem:
            return problem
    return _duplicate("name", [o.name for o in organizations]) or _duplicate(
        "client id", [o.client_id for o in organizations]
    )


def _duplicate(what: str, values: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            return f"{what} {value!r} is given to more than one organization"
        seen.add(value)
    return None


def demo_organizations(count: int) -> tuple[OrganizationSettings, ...]:
    """`org1` to `org{count}`, with client ids `org1-client`... and secrets `org1-secret`...

    Demo credentials, as public as `demo-client` / `demo-secret`: for running several
    organizations at once (one proxy organization each) with nothing to configure.
    """
    if count < 1:
        raise OrganizationError("at least one organization is needed")
    return tuple(
        OrganizationSettings(f"org{n}", f"org{n}-client", f"org{n}-secret")
        for n in range(1, count + 1)
    )
