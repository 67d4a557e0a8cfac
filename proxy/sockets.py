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

    def close(self) -> None:
        for bound in (self.main, *self.organizations.values(), self.metrics):
            if bound is not None:
                bound.sock.close()


def bind_all(app: web.Application, config: Config, *, shared: bool = False) -> Sockets:
    """Bind every listen address of the configuration (or raise :class:`ConfigError`), and
    tell ``app`` which socket serves which organization: before it starts, and freezes.
    ``shared``: one of several workers on the same addresses (``SO_REUSEPORT``)."""
    sockets = bind_sockets(config, shared=shared)
    app[LISTENERS] = _listeners(config, sockets)
    return sockets


def bind_sockets(config: Config, *, shared: bool = False, listening: bool = True) -> Sockets:
    """Every listen address of the configuration, bound (or :class:`ConfigError`).
    ``listening=False`` only reserves them, for the workers (:mod:`proxy.workers`)."""

    def at(listen: Listen, option: str) -> Bound:
        return bind(listen, option, shared=shared, listening=listening)

    main = at(config.listen, "listen")
    organizations = {
        organization.name: at(organization.listen, f"{where(organization.name)} listen")
        for organization in config.organizations
        if organization.listen is not None
    }
    metrics = at(config.metrics_listen, "metrics_listen") if config.metrics_listen else None
    return Sockets(main, organizations, metrics)


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


def bind(listen: Listen, option: str, *, shared: bool = False, listening: bool = True) -> Bound:
    """Bind and listen now, or raise :class:`ConfigError` naming the option (or, for an
    organization's own address, where its table says it). ``shared``: with ``SO_REUSEPORT``,
    which lets the workers of one supervisor (the same user) listen on one port, each with
    its own queue of new connections, which the kernel fills in turn."""
    try:
        infos = socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listening:
            sock.listen(1024)
    except OSError as exc:
        named = OPTIONS_BY_NAME[option].sources if option in OPTIONS_BY_NAME else option
        raise ConfigError(f"{named}: cannot listen on {listen}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return Bound(sock, Listen(listen.host, sock.getsockname()[1]))
