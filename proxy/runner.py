"""Serving the application: ``web.run_app``, with the proxy's client connections.

aiohttp's ``run_app`` builds its own ``AppRunner``, which makes a plain ``RequestHandler`` for
every connection and offers no setting for another class. :class:`ProxyRunner` is that
``AppRunner`` with a server whose connections are :class:`proxy.connection.ClientConnection`,
and :func:`run_app` is ``run_app`` with that runner: the same loop handling, signals and
shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
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


def run_app(
    app: web.Application,
    config: Config,
    *,
    host: str,
    port: int,
    print: Callable[[str], None],
    loop: asyncio.AbstractEventLoop | None = None,
    **kwargs: Any,
) -> None:
    """``web.run_app`` for the proxy: the same loop handling, signals and shutdown, with the
    runner from :func:`make_runner`. ``kwargs`` go to the runner (``shutdown_timeout``,
    ``handler_cancellation``, ``access_log``)."""
    loop = loop or asyncio.new_event_loop()
    main = loop.create_task(_serve(make_runner(app, config, handle_signals=True, **kwargs), host,
                                   port, print))  # fmt: skip
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main)
        _cancel_all(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _serve(
    proxy_runner: ProxyRunner,
    host: str,
    port: int,
    print: Callable[[str], None],
) -> None:
    await proxy_runner.setup()
    try:
        site = web.TCPSite(proxy_runner, host, port)
        await site.start()
        print(site.name)
        await asyncio.Event().wait()  # until cancelled by a signal
    finally:
        await proxy_runner.cleanup()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
