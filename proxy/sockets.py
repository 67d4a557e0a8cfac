"""The sockets the proxy listens on: every address bound before anything starts, so that a
busy port is one line and exit 2 before any token is fetched, and which organization each one
serves.

An organization's own listen address is one more site of the same application as the shared
``--listen``; the handler tells them apart by the local address of each connection
(:class:`~proxy.organizations.Listeners`), which :func:`bind_all` hands the application.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from proxy.config import DEFAULT_ORGANIZATION, OPTIONS_BY_NAME, Config, ConfigError, Listen
from proxy.keys import LISTENERS
from proxy.organization_settings import where
from proxy.organizations import Listeners


@dataclass(frozen=True)
class Bound:
    """A listening socket and the address it got (port 0 picks a free one)."""

    sock: socket.socket
    listen: Listen


@dataclass(frozen=True)
class Sockets:
    """Every socket the proxy listens on, bound before anything starts."""

    main: Bound
    # Each organization's own address, by name.
    organizations: Mapping[str, Bound]
    metrics: Bound | None

    @property
    def own_addresses(self) -> dict[str, Listen]:
        return {name: bound.listen for name, bound in self.organizations.items()}


def bind_all(app: web.Application, config: Config) -> Sockets:
    """Bind every listen address of the configuration (or raise :class:`ConfigError`), and
    tell ``app`` which socket serves which organization: before it starts, and freezes."""
    main = bind(config.listen, "listen")
    organizations = {
        organization.name: bind(organization.listen, f"{where(organization.name)} listen")
        for organization in config.organizations
        if organization.listen is not None
    }
    metrics = bind(config.metrics_listen, "metrics_listen") if config.metrics_listen else None
    sockets = Sockets(main, organizations, metrics)
    app[LISTENERS] = _listeners(config, sockets)
    return sockets


def _listeners(config: Config, sockets: Sockets) -> Listeners:
    # By the address each socket is bound to, as its connections' local address shows it.
    own = {
        (str(address[0]), int(address[1])): name
        for name, bound in sockets.organizations.items()
        if isinstance(address := bound.sock.getsockname(), tuple)
    }
    return Listeners(DEFAULT_ORGANIZATION if config.single_organization else None, own)


async def start_sites(runner: web.AppRunner, sockets: Sockets, tls: ssl.SSLContext | None) -> None:
    """Serve the application on the shared address and on each organization's own."""
    for bound in (sockets.main, *sockets.organizations.values()):
        await web.SockSite(runner, bound.sock, ssl_context=tls).start()


def bind(listen: Listen, option: str) -> Bound:
    """Bind and listen now, or raise :class:`ConfigError` naming the option (or, for an
    organization's own address, where its table says it)."""
    try:
        infos = socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        named = OPTIONS_BY_NAME[option].sources if option in OPTIONS_BY_NAME else option
        raise ConfigError(f"{named}: cannot listen on {listen}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return Bound(sock, Listen(listen.host, sock.getsockname()[1]))
