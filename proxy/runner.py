"""The application's runner, with the proxy's client connections.

aiohttp's ``AppRunner`` makes a plain ``RequestHandler`` for every connection and offers no
setting for another class. :class:`ProxyRunner` is that ``AppRunner`` with a server whose
connections are :class:`proxy.connection.ClientConnection`, and whose every request goes
straight to the application's one middleware, the start of the proxy's one chain
(:mod:`proxy.handler`), without aiohttp's router; :mod:`proxy.server` serves through it, and so
do the tests' stacks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_urldispatcher import UrlMappingMatchInfo

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
    :class:`ProxyServer` with the same request factory and settings, and :func:`entry` as the
    request handler.
    """

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits

    async def _make_server(self) -> web.Server:
        started = await super()._make_server()
        return ProxyServer(
            entry(self.app),
            request_factory=started.request_factory,
            limits=self.limits,
            **self._kwargs,
        )


def entry(app: web.Application) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """The request handler for ``app``: its one middleware, called for every request.

    Every request takes one chain, whatever its target (:mod:`proxy.handler`), so there is
    nothing to route. aiohttp's ``Application`` would still resolve each target against its
    route table and wrap the middleware for the route found, about a twentieth of the proxy's
    CPU per request under load (bench/), only to arrive at the same function. What resolving
    gives a request is kept: its application (``request.app``), through a match of the
    application's one route made once. ``Expect`` is answered in the chain, after every check
    (aiohttp's router would answer it before any, and say the client's value back).
    """
    (middleware,) = app.middlewares
    (route,) = app.router.routes()
    matched = UrlMappingMatchInfo({}, route)
    matched.add_app(app)
    matched.freeze()

    def handle(request: web.BaseRequest) -> Awaitable[web.StreamResponse]:
        # Not a coroutine of its own, as the middleware is not (proxy.handler): aiohttp awaits
        # the chain's. Expect is the chain's too (proxy.refusals, proxy.bodies).
        assert isinstance(request, web.Request)  # made by the application's request factory
        # Where aiohttp's own handler puts the router's match (a private attribute, which an
        # aiohttp upgrade may move: the tests that serve create_app through aiohttp's runner
        # and through this one would then disagree).
        request._match_info = matched
        return middleware(request, route.handler)

    return handle


def make_runner(app: web.Application, config: Config, **kwargs: Any) -> ProxyRunner:
    """The runner for the proxy's application, with every connection limit set from
    ``config``; ``kwargs`` are ``web.AppRunner``'s."""
    return ProxyRunner(app, ConnectionLimits.of(config), **handler_settings(config) | kwargs)
