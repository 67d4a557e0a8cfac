"""``create_app``: the only place the proxy is assembled. Read it as the table of contents."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from proxy import ops
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


def create_app(config: Config, *, clock: Clock = time.monotonic) -> web.Application:
    """The proxy as an aiohttp application. ``clock`` is the token cache's monotonic clock."""
    # Bodies up to the replay limit are read into memory; larger ones are streamed and never
    # meet this limit.
    app = web.Application(
        middlewares=[ops.access_middleware, problem_middleware, refusal_middleware],
        client_max_size=max(config.replay_limit_bytes, 1),
    )
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_upstream_session)
    app.cleanup_ctx.append(_token_cache(clock))
    ops.add_routes(app)
    app.router.add_route("*", "/{path:.*}", forward)
    return app


async def _upstream_session(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=UPSTREAM_CONNECTION_LIMIT),
        timeout=aiohttp.ClientTimeout(
            sock_connect=config.upstream_connect_timeout_seconds,
            sock_read=config.upstream_read_timeout_seconds,
        ),
        # Compressed bodies pass through byte for byte with their Content-Encoding.
        auto_decompress=False,
        # One session serves every client: a cookie set for one must never be sent for another.
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as session:
        app[UPSTREAM_SESSION] = session
        yield


def _token_cache(clock: Clock) -> CleanupContext:
    async def token_cache(app: web.Application) -> AsyncIterator[None]:
        config, metrics = app[CONFIG], app[METRICS]
        # A session of its own: token requests never pass through the upstream session's
        # settings (long read timeouts, shared pool) and never carry a Bearer token.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
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
