"""``create_app``: the only place the proxy is assembled. Read it as the table of contents."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from proxy import egress, ops, tls
from proxy.config import Config
from proxy.forward import forward, refusal_middleware
from proxy.grants import TokenClient
from proxy.keys import CONFIG, METRICS, TOKENS, UPSTREAM_SESSION
from proxy.metrics import Metrics
from proxy.problems import problem_middleware
from proxy.tokens import Clock, TokenCache

logger = logging.getLogger(__name__)

UPSTREAM_CONNECTION_LIMIT = 100
CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def create_app(
    config: Config,
    *,
    clock: Clock = time.monotonic,
    proxies: egress.EgressProxies = egress.NO_PROXIES,
) -> web.Application:
    """The proxy as an aiohttp application. ``clock`` is the token cache's monotonic clock;
    ``proxies`` are the egress proxies the upstream and the token endpoint are reached through.
    """
    # Built now, before anything listens: a CA file that holds no certificate stops the
    # command line with one line.
    tls_context = tls.client_context(config.upstream_ca_file)
    # Bodies up to the replay limit are read into memory; larger ones are streamed and never
    # meet this limit.
    app = web.Application(
        middlewares=[ops.access_middleware, problem_middleware, refusal_middleware],
        client_max_size=max(config.replay_limit_bytes, 1),
    )
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_upstream_session(tls_context, proxies))
    app.cleanup_ctx.append(_token_cache(clock, tls_context, proxies))
    ops.add_routes(app)
    app.router.add_route("*", "/{path:.*}", forward)
    return app


def token_session(
    config: Config,
    proxies: egress.EgressProxies,
    tls_context: ssl.SSLContext | None = None,
) -> aiohttp.ClientSession:
    """The session token requests go through, for the proxy and for ``check`` alike.

    A session of its own: token requests never pass through the upstream session's settings
    (long read timeouts, shared pool) and never carry a Bearer token.
    """
    route = proxies.route(config.token_url)
    egress.announce("token endpoint", config.token_url, route)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            ssl=tls_context or tls.client_context(config.upstream_ca_file)
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
        proxy=route.proxy,
    )


def _upstream_session(tls_context: ssl.SSLContext, proxies: egress.EgressProxies) -> CleanupContext:
    async def upstream_session(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        route = proxies.route(config.upstream)
        egress.announce("upstream", config.upstream, route)
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=UPSTREAM_CONNECTION_LIMIT, ssl=tls_context),
            timeout=aiohttp.ClientTimeout(
                sock_connect=config.upstream_connect_timeout_seconds,
                sock_read=config.upstream_read_timeout_seconds,
            ),
            # Compressed bodies pass through byte for byte with their Content-Encoding.
            auto_decompress=False,
            # One session serves every client: a cookie set for one must never be sent for
            # another.
            cookie_jar=aiohttp.DummyCookieJar(),
            proxy=route.proxy,
        ) as session:
            app[UPSTREAM_SESSION] = session
            yield

    return upstream_session


def _token_cache(
    clock: Clock, tls_context: ssl.SSLContext, proxies: egress.EgressProxies
) -> CleanupContext:
    async def token_cache(app: web.Application) -> AsyncIterator[None]:
        config, metrics = app[CONFIG], app[METRICS]
        async with token_session(config, proxies, tls_context) as session:
            cache = TokenCache(
                TokenClient(session, config).fetch,
                refresh_margin_seconds=config.refresh_margin_seconds,
                clock=clock,
                observe=lambda outcome: metrics.token_fetches.labels(outcome).inc(),
            )
            app[TOKENS] = cache
            metrics.token_expiry.set_function(cache.seconds_until_expiry)
            refresher = asyncio.create_task(cache.maintain())
            yield
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

    return token_cache
