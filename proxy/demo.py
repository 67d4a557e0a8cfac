"""``smartdoc-proxy demo``: the stand-in and the proxy in one process, with nothing configured.

The stand-in listens on a free loopback port chosen at start; the proxy is configured exactly
as a user would configure it for SmartDocumentor, through :func:`load_config`, with the
stand-in's demo credentials.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

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
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    config = load_config(
        {
            "listen": listen,
            "upstream": f"http://{host}:{port}",
            "client_id": settings.client_id,
            # The stand-in's data is invented: the inspector may show every textual body.
            "inspect_bodies": "true",
        },
        {"SMARTDOC_CLIENT_SECRET": settings.client_secret},
    )
    return Demo(config, sock, settings)


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
    proxy_url = f"http://{listen or demo.config.listen}"
    return "\n".join(
        (
            f"SmartDocumentor stand-in: {demo.standin_url} (client id {demo.settings.client_id})",
            f"Proxy: {proxy_url} -> {demo.standin_url}",
            "Try it (no credentials needed on the client side):",
            f"  curl -s {proxy_url}{TRY_PATH}",
            f"Watch the requests arrive: {proxy_url}/_proxy/ (the inspector, bodies shown)",
            "Press Ctrl+C to stop.",
        )
    )
