"""``create_app``: the only place the proxy is assembled. Read it as the table of contents."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from yarl import URL

from proxy import egress, logs, secret_expiry, tls
from proxy.access import access_of
from proxy.clock import Clock, Sleep
from proxy.config import Config
from proxy.errors import TOKEN_OUTCOMES
from proxy.grants import Credentials, Grant, TokenClient
from proxy.handler import handle, handle_ops
from proxy.inspector import routes as inspector
from proxy.inspector.buffer import Buffer
from proxy.keys import (
    FRESH_SESSION,
    INSPECTOR,
    LIVE,
    METRICS,
    OBSERVERS,
    TOKENS,
    UPSTREAM_SESSION,
)
from proxy.metrics import Metrics
from proxy.reload import Live
from proxy.tokens import TokenCache

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def create_app(
    config: Config,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    proxies: egress.EgressProxies = egress.NO_PROXIES,
) -> web.Application:
    """The proxy as an aiohttp application. ``clock`` and ``sleep`` drive the token cache;
    ``proxies`` are the egress proxies the upstream and the token endpoint are reached through.

    Raises :class:`~proxy.config.ConfigError` for an unreadable or invalid keys or CA file."""
    # Built now, before anything listens: a CA file that holds no certificate stops the
    # command line with one line.
    tls_context = tls.client_context(config.upstream_ca_file)
    # Bodies up to the replay limit are read into memory; larger ones are streamed and never
    # meet this limit.
    app = web.Application(middlewares=[handle], client_max_size=max(config.replay_limit_bytes, 1))
    app[LIVE] = Live(config, access_of(config))
    metrics = app[METRICS] = Metrics()
    buffer = app[INSPECTOR] = Buffer(config.inspect_exchanges)
    metrics.inspector_exchanges.set_function(buffer.__len__)
    recording = (buffer.observe,) if config.inspector != "off" else ()
    app[OBSERVERS] = (logs.log_exchange, metrics.observe, *recording)
    app.on_shutdown.append(inspector.end_streams)
    app.cleanup_ctx.append(_upstream_sessions(tls_context, proxies))
    app.cleanup_ctx.append(_token_cache(clock, sleep, tls_context, proxies))
    app.cleanup_ctx.append(secret_expiry.watch())
    # Routing is the handler's own (see proxy.handler): this one route only gives aiohttp
    # something to match.
    app.router.add_route("*", r"/{path:[\s\S]*}", _unreachable)
    return app


def ops_app(app: web.Application) -> web.Application:
    """The proxy's own endpoints alone, for the ``--metrics-listen`` address; shares the
    running ``app``'s state (its token cache, metrics and access rules)."""
    ops = web.Application(middlewares=[handle_ops])
    ops[LIVE], ops[METRICS], ops[OBSERVERS] = app[LIVE], app[METRICS], app[OBSERVERS]
    ops[TOKENS] = app[TOKENS]
    ops.router.add_route("*", r"/{path:[\s\S]*}", _unreachable)
    return ops


async def _unreachable(request: web.Request) -> web.StreamResponse:
    raise AssertionError("proxy.handler.handle answers every request")


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


def _upstream_sessions(
    tls_context: ssl.SSLContext, proxies: egress.EgressProxies
) -> CleanupContext:
    async def upstream_sessions(app: web.Application) -> AsyncIterator[None]:
        config = app[LIVE].config
        route = proxies.route(config.upstream)
        egress.announce("upstream", config.upstream, route)
        pooled = aiohttp.TCPConnector(limit=config.upstream_pool_size, ssl=tls_context)
        # Never reuses a connection: for the one retry after a stale keep-alive one.
        fresh = aiohttp.TCPConnector(force_close=True, limit=0, ssl=tls_context)
        async with (
            _upstream_session(config, pooled, route.proxy) as session,
            _upstream_session(config, fresh, route.proxy) as fresh_session,
        ):
            app[UPSTREAM_SESSION], app[FRESH_SESSION] = session, fresh_session
            yield

    return upstream_sessions


def _upstream_session(
    config: Config, connector: aiohttp.BaseConnector, proxy: URL | None
) -> aiohttp.ClientSession:
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
        proxy=proxy,
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


def _token_cache(
    clock: Clock, sleep: Sleep, tls_context: ssl.SSLContext, proxies: egress.EgressProxies
) -> CleanupContext:
    async def token_cache(app: web.Application) -> AsyncIterator[None]:
        live, metrics = app[LIVE], app[METRICS]
        for outcome in TOKEN_OUTCOMES:  # every outcome exported from the start, at 0
            metrics.token_fetches.labels(outcome)
        async with token_session(live.config, proxies, tls_context) as session:

            async def fetch() -> Grant:
                # The credentials in force now: a reload may have changed them.
                return await TokenClient(session, credentials(live.config)).fetch()

            cache = TokenCache(
                fetch,
                refresh_margin_seconds=live.config.refresh_margin_seconds,
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
