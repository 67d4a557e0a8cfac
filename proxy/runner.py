"""The application's runner, with the proxy's client connections.

aiohttp's ``AppRunner`` makes a plain ``RequestHandler`` for every connection and offers no
setting for another class. :class:`ProxyRunner` is that ``AppRunner`` with a server whose
connections are :class:`proxy.connection.ClientConnection`; :mod:`proxy.server` serves through
it, and so do the tests' stacks.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from proxy.config import Config
from proxy.connection import ClientConnection, ConnectionLimits, handler_settings


class ProxyServer(web.Server):
    """aiohttp's server, making a :class:`ClientConnection` for each client connection."""

    def __init__(self, handler: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits

    def __call__(self) -> RequestHandler:
        return ClientConnection(self, limits=self.limits, loop=self._loop, **self._kwargs)


class ProxyRunner(web.AppRunner):
    """``web.AppRunner`` whose server is a :class:`ProxyServer`.

    ``_make_server`` is the hook every aiohttp runner implements; this one lets the
    ``AppRunner`` start the application as usual, then serves it through a
    :class:`ProxyServer` with the same request handler and settings.
    """

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits

    async def _make_server(self) -> web.Server:
        started = await super()._make_server()
        return ProxyServer(
            started.request_handler,
            request_factory=started.request_factory,
            limits=self.limits,
            **self._kwargs,
        )


def make_runner(app: web.Application, config: Config, **kwargs: Any) -> ProxyRunner:
    """The runner for the proxy's application, with every connection limit set from
    ``config``; ``kwargs`` are ``web.AppRunner``'s."""
    return ProxyRunner(app, ConnectionLimits.of(config), **handler_settings(config) | kwargs)
