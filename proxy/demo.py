"""``smartdoc-proxy demo``: the stand-in and the proxy in one process, with nothing configured.

The stand-in listens on a free loopback port chosen at start; the proxy is configured exactly
as a user would configure it for SmartDocumentor, through :func:`load_config`, with the
stand-in's demo credentials.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from aiohttp import web

from proxy.config import Config, Listen, load_config
from proxy.standin import create_standin_app
from proxy.standin.settings import StandinSettings

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
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        host, port = sock.getsockname()
        flags = {"listen": listen, "upstream": f"http://{host}:{port}"}
        # The open-door rule guards the organization's identity, and the demo has none: its
        # credentials are the stand-in's own. A container publishes it from 0.0.0.0.
        flags |= {"client_id": settings.client_id, "insecure_open": "true"}
        config = load_config(flags, {"SMARTDOC_CLIENT_SECRET": settings.client_secret})
    except BaseException:
        sock.close()
        raise
    # The advice `check` would give does not fit here: the credentials are the stand-in's own,
    # and a token failure is one of its fault switches, set on purpose.
    advice = (
        "The demo's stand-in fails token requests on purpose while its fault switches say so; "
        "reset them at the stand-in itself (the proxy needs a token to forward anything): "
        + reset_command(f"http://{host}:{port}")
    )
    return Demo(replace(config, token_failure_advice=advice), sock, settings)


def reset_command(standin_url: str) -> str:
    """The command that turns every fault switch of the stand-in at ``standin_url`` off."""
    return f"curl -s -X DELETE {standin_url}/_standin/faults"


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


def banner(demo: Demo, listen: Listen | None = None) -> str:
    """What the demo prints once it listens; ``listen`` is the address it really got."""
    proxy_url, standin_url = f"http://{listen or demo.config.listen}", demo.standin_url
    return "\n".join(
        (
            f"SmartDocumentor stand-in: {standin_url} (client id {demo.settings.client_id})",
            f"Proxy: {proxy_url} -> {standin_url}",
            "Try it (no credentials needed on the client side):",
            f"  curl -s {proxy_url}{TRY_PATH}",
            # Through the proxy, a switch that fails token requests would leave it without a
            # token to forward the request that turns the switch off.
            "The stand-in's fault switches (ask the stand-in itself, not the proxy):",
            f"  curl -s {standin_url}/_standin/faults    # show them",
            f"  {reset_command(standin_url)}    # all off",
            "Press Ctrl+C to stop.",
        )
    )
