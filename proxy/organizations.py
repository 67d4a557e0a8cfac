"""Which organization a request belongs to: decided once per request, from the address it
arrived on and the key it presents, by the pure rule :func:`organization_for`.

=========================  =============================  ===================================
address                    key presented                  the request acts as
=========================  =============================  ===================================
an organization's own      none needed if it has no keys  that organization
an organization's own      one of its own keys            that organization
an organization's own      none, or another one's key     401 / 403 (when it has keys)
the shared ``--listen``    any organization's key         the key's organization
the shared ``--listen``    none, or an unknown one        401, saying how to choose
=========================  =============================  ===================================

With the single-organization settings the shared address is the ``default`` organization's
own, so nothing changes for them. Which socket a request came in on is told by its local
address (:class:`Listeners`), never by anything the client sends: a ``Host`` header is the
client's say-so.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from proxy.access import ANONYMOUS, KEY_WAYS, InboundKey
from proxy.errors import AccessDenied, KeyRequired

# The organization of a request refused before one could be chosen, in logs and metrics.
UNCHOSEN = "-"


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: the organization it acts as, and the client's name."""

    organization: str
    client: str


def organization_for(
    serves: str | None,
    presented: InboundKey | None,
    keyed: Collection[str],
    own_addresses: Mapping[str, str] | None = None,
) -> Caller:
    """The organization a request acts as, on an address that ``serves`` one (``None``: the
    shared address of several organizations), given the listed key it ``presented`` (if any)
    and the organizations that have keys (``keyed``). ``own_addresses`` (organization ->
    address) goes into the 401 that tells a client how to choose.

    Raises :class:`KeyRequired` (401) or :class:`AccessDenied` (403).
    """
    if serves is None:
        if presented is None:
            raise KeyRequired(_how_to_choose(own_addresses or {}))
        return Caller(presented.organization, presented.name)
    if serves not in keyed:
        # An organization without keys: its address is the choice (and whoever reaches it,
        # through the allow-list, acts as it). A key of anybody's counts for nothing here.
        return Caller(serves, ANONYMOUS)
    if presented is None:
        raise KeyRequired(f"a key is required: send it {KEY_WAYS}")
    if presented.organization != serves:
        raise AccessDenied(
            f"this key belongs to another organization than the one this address serves "
            f"({serves}): use the shared address, or the organization's own"
        )
    return Caller(serves, presented.name)


def _how_to_choose(own_addresses: Mapping[str, str]) -> str:
    choices = f"send a key of the organization, {KEY_WAYS}"
    if own_addresses:
        listed = ", ".join(f"{name} at {address}" for name, address in own_addresses.items())
        choices += f"; or send the request to the organization's own address: {listed}"
    return f"this address serves several organizations, and a request chooses one: {choices}"


@dataclass(frozen=True)
class Listeners:
    """Which organization each listening socket serves: ``own`` maps the bound addresses of
    organizations' own sockets, ``(host, port)``, to their names; any other socket (the
    shared ``--listen``, a test server) serves ``shared``, ``None`` meaning several
    organizations, among which a key chooses."""

    shared: str | None
    own: Mapping[tuple[str, int], str] = field(default_factory=dict)

    def serving(self, sockname: object) -> str | None:
        """The organization served on the local address of a connection (its ``sockname``)."""
        if not isinstance(sockname, tuple) or len(sockname) < 2:
            return self.shared
        host, port = str(sockname[0]), sockname[1]
        exact = self.own.get((host, port))
        if exact is not None:
            return exact
        for (bound_host, bound_port), name in self.own.items():
            # A socket bound to 0.0.0.0 or :: sees connections on every local address; no other
            # socket can be bound to its port, so the port alone tells.
            if bound_port == port and _unspecified(bound_host):
                return name
        return self.shared

    @functools.cached_property
    def addresses(self) -> dict[str, str]:
        """Each organization's own address, ``HOST:PORT``, for messages (worked out once)."""
        return {name: _address(host, port) for (host, port), name in self.own.items()}


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
