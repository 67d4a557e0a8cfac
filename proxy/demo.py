"""``smartdoc-proxy demo``: the stand-in and the proxy in one process, with nothing configured.

The stand-in listens on a free loopback port chosen at start; the proxy is configured exactly
as a user would configure it for SmartDocumentor, through :func:`load_config`, with the
stand-in's demo credentials. With ``--organizations N``, the stand-in serves ``org1`` to
``orgN`` and the proxy gives each an address of its own: the ``--listen`` port for ``org1``,
the next one for ``org2``, and so on; the shared address (probes, metrics) takes the port after
the last.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace

from aiohttp import web

from proxy.config import Config, Listen, load_config
from proxy.standin import create_standin_app
from proxy.standin.settings import StandinSettings, demo_organizations

DEFAULT_LISTEN = "127.0.0.1:8080"
TRY_PATH = "/api/v1.0/external/sdworkspace/CurrentWorkspaces"


@dataclass(frozen=True)
class Demo:
    config: Config
    standin_socket: socket.socket
    settings: StandinSettings

    @property
    def standin_url(self) -> str:
        host, port = self.standin_socket.getsockname()[:2]
        return f"http://{host}:{port}"


def prepare(listen: str, settings: StandinSettings | None = None) -> Demo:
    """Bind the stand-in's socket and configure the proxy in front of it."""
    settings = settings or StandinSettings()
    sock, upstream = _standin_socket()
    try:
        # The open-door rule guards the organization's identity, and the demo has none: its
        # credentials are the stand-in's own. A container publishes it from 0.0.0.0.
        flags = {"listen": listen, "upstream": upstream, "client_id": settings.client_id,
                 "insecure_open": "true",
                 # The stand-in's data is invented: the inspector may show every textual body.
                 "inspect_bodies": "true"}  # fmt: skip
        config = load_config(flags, {"SMARTDOC_CLIENT_SECRET": settings.client_secret})
    except BaseException:
        sock.close()
        raise
    return Demo(_advised(config, upstream), sock, settings)


def prepare_organizations(listen: str, count: int, settings: StandinSettings | None = None) -> Demo:
    """The stand-in with ``count`` organizations, and the proxy with an address for each."""
    base = settings or StandinSettings()
    settings = replace(base, organizations=demo_organizations(count))
    sock, upstream = _standin_socket()
    organizations = {
        organization.name: {
            "client_id": organization.client_id,
            "client_secret": organization.client_secret,
            "listen": _shifted(listen, number),
        }
        for number, organization in enumerate(settings.organizations)
    }
    try:
        flags = {"listen": _shifted(listen, count), "upstream": upstream,
                 "insecure_open": "true", "inspect_bodies": "true"}  # fmt: skip
        config = load_config(flags, {}, organizations=organizations)
    except BaseException:
        sock.close()
        raise
    return Demo(_advised(config, upstream), sock, settings)


def _advised(config: Config, standin_url: str) -> Config:
    # The advice `check` would give does not fit here: the credentials are the stand-in's own,
    # and a token failure is one of its fault switches, set on purpose.
    advice = (
        "The demo's stand-in fails token requests on purpose while its fault switches say so; "
        "reset them at the stand-in itself (the proxy needs a token to forward anything): "
        + reset_command(standin_url)
    )
    return replace(config, token_failure_advice=advice)


def reset_command(standin_url: str) -> str:
    """The command that turns every fault switch of the stand-in at ``standin_url`` off."""
    return f"curl -s -X DELETE {standin_url}/_standin/faults"


def _standin_socket() -> tuple[socket.socket, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    return sock, f"http://{host}:{port}"


def _shifted(listen: str, offset: int) -> str:
    """``HOST:PORT`` with the port ``offset`` further on; port 0 (any free one) stays 0. A
    value that is no ``HOST:PORT`` is left for :func:`load_config` to refuse."""
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return listen
    return f"{host}:{int(port) + offset}"


def with_standin(app: web.Application, demo: Demo) -> web.Application:
    """``app`` with the stand-in started before it and stopped after it."""

    async def standin(app: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(create_standin_app(demo.settings), access_log=None)
        await runner.setup()
        await web.SockSite(runner, demo.standin_socket).start()
        yield
        await runner.cleanup()

    # First in the list: the stand-in must answer before the token cache asks it for a token.
    app.cleanup_ctx.insert(0, standin)
    return app


def banner(
    demo: Demo, listen: Listen | None = None, own: Mapping[str, Listen] | None = None
) -> str:
    """What the demo prints once it listens; ``listen`` and ``own`` are the addresses it
    really got: the shared one and each organization's own."""
    proxy_url, standin_url = f"http://{listen or demo.config.listen}", demo.standin_url
    if not demo.config.single_organization:
        return _organizations_banner(demo, proxy_url, own or {})
    return "\n".join(
        (
            f"SmartDocumentor stand-in: {standin_url} (client id {demo.settings.client_id})",
            f"Proxy: {proxy_url} -> {standin_url}",
            "Try it (no credentials needed on the client side):",
            f"  curl -s {proxy_url}{TRY_PATH}",
            f"Watch the requests arrive: {proxy_url}/_proxy/ (the inspector, bodies shown)",
            # Through the proxy, a switch that fails token requests would leave it without a
            # token to forward the request that turns the switch off.
            "The stand-in's fault switches (ask the stand-in itself, not the proxy):",
            f"  curl -s {standin_url}/_standin/faults    # show them",
            f"  {reset_command(standin_url)}    # all off",
            "Press Ctrl+C to stop.",
        )
    )


def _organizations_banner(demo: Demo, proxy_url: str, own: Mapping[str, Listen]) -> str:
    names = ", ".join(organization.name for organization in demo.settings.organizations)
    lines = [
        f"SmartDocumentor stand-in: {demo.standin_url} (organizations {names})",
        f"Proxy: {proxy_url} -> {demo.standin_url} (probes: {proxy_url}/_proxy/readyz)",
        "Each organization has an address of its own; try them (no credentials needed on the "
        "client side):",
    ]
    for organization in demo.config.organizations:
        address = own.get(organization.name, organization.listen)
        lines += [f"  # {organization.name}", f"  curl -s http://{address}{TRY_PATH}"]
    return "\n".join([*lines, "Press Ctrl+C to stop."])
