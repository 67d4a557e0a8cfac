"""``create_app``: the only place the proxy is assembled. Read it as the table of contents."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from proxy import logs
from proxy.clock import Clock, Sleep
from proxy.config import Config
from proxy.errors import TOKEN_OUTCOMES
from proxy.grants import Credentials, TokenClient
from proxy.handler import handle
from proxy.keys import (
    CONFIG,
    FRESH_SESSION,
    IN_FLIGHT,
    METRICS,
    OBSERVERS,
    REPLAY_BUDGET,
    STREAMING_SLOTS,
    TOKENS,
    UPSTREAM_SESSION,
)
from proxy.limits import InFlight, ReplayBudget, streaming_share
from proxy.metrics import Metrics
from proxy.tokens import TokenCache

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def create_app(
    config: Config, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
) -> web.Application:
    """The proxy as an aiohttp application. ``clock`` and ``sleep`` drive the token cache."""
    # Request bodies are read by proxy.bodies under its own limits, never through
    # request.read(), which client_max_size bounds.
    app = web.Application(middlewares=[handle], client_max_size=max(config.replay_limit_bytes, 1))
    app[CONFIG] = config
    metrics = app[METRICS] = Metrics()
    app[OBSERVERS] = (logs.log_exchange, metrics.observe)
    app[REPLAY_BUDGET] = ReplayBudget(config.replay_budget_bytes)
    app[IN_FLIGHT] = InFlight(config.max_requests_in_flight)
    app[STREAMING_SLOTS] = asyncio.Semaphore(streaming_share(config.upstream_pool_size))
    app.cleanup_ctx.append(_upstream_sessions)
    app.cleanup_ctx.append(_token_cache(clock, sleep))
    # Routing is the handler's own (see proxy.handler): this one route only gives aiohttp
    # something to match.
    app.router.add_route("*", r"/{path:[\s\S]*}", _unreachable)
    return app


async def _unreachable(request: web.Request) -> web.StreamResponse:
    raise AssertionError("proxy.handler.handle answers every request")


async def _upstream_sessions(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    # Idle connections are closed before the upstream's own idle timeout would close them
    # under a request that is just reusing one.
    pooled = aiohttp.TCPConnector(
        limit=config.upstream_pool_size, keepalive_timeout=config.upstream_keepalive_seconds
    )
    fresh = aiohttp.TCPConnector(force_close=True, limit=0)
    async with _upstream_session(config, pooled) as session, _upstream_session(config, fresh) as f:
        app[UPSTREAM_SESSION], app[FRESH_SESSION] = session, f
        yield


def _upstream_session(config: Config, connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            # connect bounds the whole wait for a connection: for a free one in the pool, and
            # for a new one to connect (which sock_connect bounds on its own as well).
            connect=config.upstream_pool_timeout_seconds,
            sock_connect=config.upstream_connect_timeout_seconds,
            sock_read=config.upstream_read_timeout_seconds,
        ),
        # Compressed bodies pass through byte for byte with their Content-Encoding.
        auto_decompress=False,
        # One session serves every client: a cookie set for one must never be sent for another.
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def credentials(config: Config) -> Credentials:
    """What the token endpoint is asked with, taken from the configuration."""
    return Credentials(
        token_url=config.token_url,
        client_id=config.client_id,
        scope=config.scope,
        client_auth=config.client_auth,
        timeout_seconds=config.token_timeout_seconds,
        default_lifetime_seconds=config.default_token_lifetime_seconds,
        secret=config.client_secret,
        secret_file=config.client_secret_file,
    )


def _token_cache(clock: Clock, sleep: Sleep) -> CleanupContext:
    async def token_cache(app: web.Application) -> AsyncIterator[None]:
        config, metrics = app[CONFIG], app[METRICS]
        for outcome in TOKEN_OUTCOMES:  # every outcome exported from the start, at 0
            metrics.token_fetches.labels(outcome)
        # A session of its own: token requests never pass through the upstream session's
        # settings (long read timeouts, shared pool) and never carry a Bearer token.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            cache = TokenCache(
                TokenClient(session, credentials(config)).fetch,
                refresh_margin_seconds=config.refresh_margin_seconds,
                clock=clock,
                sleep=sleep,
                observe=lambda outcome: metrics.token_fetches.labels(outcome).inc(),
            )
            app[TOKENS] = cache
            metrics.token_expiry.set_function(cache.seconds_until_expiry)
            cache.start()
            try:
                yield
            finally:
                await cache.aclose()

    return token_cache
