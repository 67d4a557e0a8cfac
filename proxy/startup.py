"""What the proxy says once it listens: what it serves, for whom, and which doors are open."""

from __future__ import annotations

import logging
import ssl

from aiohttp import web

from proxy.config import DEFAULT_ORGANIZATION, Config, Listen
from proxy.keys import LIVE
from proxy.sockets import Sockets

# The start-up lines have always come from proxy.server; operators' log filters know them so.
logger = logging.getLogger("proxy.server")


def say_what_runs(
    app: web.Application, config: Config, sockets: Sockets, tls: ssl.SSLContext | None
) -> None:
    access = app[LIVE].access
    scheme = "https" if tls else "http"
    keys = "no keys" if access.keys is None else f"{len(access.keys)} client keys"
    allowed = "".join(f", {network}" for network in access.allow)
    main, metrics = sockets.main, sockets.metrics
    if config.single_organization:
        (only,) = config.organizations
        logger.info(
            "proxy for %s listening on %s://%s: token URL %s, client id %r, admitting this "
            "machine%s, %s%s",
            config.upstream,
            scheme,
            main.listen,
            only.token_url,
            only.client_id,
            allowed,
            keys,
            f", metrics on http://{metrics.listen}" if metrics else "",
        )
    else:
        _say_which_organizations(app, config, sockets, scheme)
    for listen, keyless, whom in _doors(app, config, sockets):
        _warn_about(listen, keyless, whom, config, tls)


def _say_which_organizations(
    app: web.Application, config: Config, sockets: Sockets, scheme: str
) -> None:
    access = app[LIVE].access
    metrics = sockets.metrics
    logger.info(
        "proxy for %s listening on %s://%s for %d organizations (a key chooses one), admitting "
        "this machine%s%s",
        config.upstream,
        scheme,
        sockets.main.listen,
        len(config.organizations),
        "".join(f", {network}" for network in access.allow),
        f", metrics on http://{metrics.listen}" if metrics else "",
    )
    for organization in config.organizations:
        own = sockets.organizations.get(organization.name)
        logger.info(
            "organization %s: client id %r, token URL %s, %s%s",
            organization.name,
            organization.client_id,
            organization.token_url,
            "keys" if organization.name in access.keyed else "no keys",
            f", its own address {scheme}://{own.listen}" if own else "",
        )


def _doors(
    app: web.Application, config: Config, sockets: Sockets
) -> list[tuple[Listen, bool, str]]:
    """Every address a client can come in by: whether it takes no key, and whom it serves."""
    access = app[LIVE].access
    shared_keyless = config.single_organization and DEFAULT_ORGANIZATION not in access.keyed
    doors = [(sockets.main.listen, shared_keyless, "the organization")]
    for name, bound in sockets.organizations.items():
        doors.append((bound.listen, name not in access.keyed, name))
    return doors


def _warn_about(
    listen: Listen, keyless: bool, whom: str, config: Config, tls: ssl.SSLContext | None
) -> None:
    if listen.is_loopback:
        return
    if keyless:
        logger.warning(
            "listening on %s, not a loopback address, without keys: anyone who can reach it "
            "from %s acts as %s on SmartDocumentor",
            listen,
            "anywhere" if config.insecure_open and not config.allow else "the allowed networks",
            whom,
        )
    elif tls is None:
        logger.warning(
            "inbound keys travel in clear over plain HTTP on %s: serve HTTPS with "
            "--tls-cert-file and --tls-key-file",
            listen,
        )
