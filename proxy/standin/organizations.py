"""Every organization one stand-in serves, found by the name its tokens carry.

The token endpoint authenticates a client against the configured organizations
(`oauth.authenticate`); the token it issues remembers that organization's name, and the Bearer
check puts the organization on each API request (`keys.ORGANIZATION`), so a handler only ever
sees the data of the organization whose token called it, as SmartDocumentor scopes every call.
Organizations share one `ids.IdSequences`, so no two objects of any organizations share an id.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from .ids import IdSequences
from .organization import Organization
from .settings import StandinSettings


class Organizations:
    """The organizations of `settings.organizations`, in order; the first has tenant id 1."""

    def __init__(self, settings: StandinSettings, created_on: datetime) -> None:
        ids = IdSequences()
        # Every organization gets the configured workspaces, each with ids of its own.
        names = (settings.default_workspace_name, *settings.workspaces)
        self._by_name = {
            configured.name: Organization(configured.name, tenant_id, names, ids, created_on)
            for tenant_id, configured in enumerate(settings.organizations, start=1)
        }

    def __iter__(self) -> Iterator[Organization]:
        return iter(self._by_name.values())

    def named(self, name: str) -> Organization:
        """The organization called `name` (a name a token of this stand-in carries)."""
        return self._by_name[name]
