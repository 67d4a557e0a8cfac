"""``create_app``: the only place the proxy is assembled. Read it as the table of contents."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine

import aiohttp
from aiohttp import web
from yarl import URL

from proxy import egress, logs, secret_expiry, tasks, tls
from proxy.access import access_of
from proxy.clock import Clock, Sleep
from proxy.config import DEFAULT_ORGANIZATION, Config, Organization
from proxy.errors import TOKEN_OUTCOMES, TokenError
from proxy.exchange import Observer
from proxy.grants import Credentials, Grant, TokenClient
from proxy.handler import handle, handle_ops
from proxy.inspector import routes as inspector
from proxy.inspector import sharing as sharing_inspector
from proxy.inspector.buffer import Buffer
from proxy.keys import (
    FRESH_SESSION,
    IN_FLIGHT,
    INSPECTOR,
    LISTENERS,
    LIVE,
    METRICS,
    OBSERVERS,
    REPLAY_BUDGET,
    STREAMING_SLOTS,
    TOKEN_CACHES,
    UPSTREAM_SESSION,
)
from proxy.limits import InFlight, ReplayBudget, streaming_share
from proxy.metrics import Metrics
from proxy.organizations import Listeners
from proxy.reload import Live
from proxy.tokens import TokenCache
from proxy.workers import Worker

CleanupContext = Callable[[web.Application], AsyncIterator[None]]
# How much of an upstream answer the upstream session buffers (aiohttp stops reading the
# upstream at twice this, and reads on below it): 256 KiB rather than aiohttp's 64 KiB, so
# that a streamed download passes in larger pieces, with fewer pauses of the upstream
# socket. 1 GiB downloaded took 0.52-0.63 s of CPU instead of 0.71 s, at 1.05-1.29 x nginx's
# rate instead of 0.95 x, peak RSS unchanged (bench/, stream); the price is that a client
# reading slowly can hold up to 512 KiB of its answer in the proxy instead of 128 KiB.
UPSTREAM_READ_BUFFER_BYTES = 256 * 1024


def create_app(
    config: Config,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    proxies: egress.EgressProxies = egress.NO_PROXIES,
    worker: Worker | None = None,
) -> web.Application:
    """The proxy as an aiohttp application. ``clock`` and ``sleep`` drive the token cache;
    ``proxies`` are the egress proxies the upstream and the token endpoint are reached through;
    ``worker``: as one of several workers (:mod:`proxy.workers`), sharing metrics and the
    inspector with the others.

    Raises :class:`~proxy.config.ConfigError` for an unreadable or invalid keys or CA file."""
    # Built now, before anything listens: a CA file that holds no certificate stops the
    # command line with one line.
    tls_context = tls.client_context(config.upstream_ca_file)
    # Request bodies are read by proxy.bodies under its own limits, never through
    # request.read(), which client_max_size bounds.
    app = web.Application(middlewares=[handle], client_max_size=max(config.replay_limit_bytes, 1))
    app[LIVE] = Live(config, access_of(config))
    several = not config.single_organization
    # Until proxy.sockets binds the organizations' own addresses, every socket is the shared one.
    app[LISTENERS] = Listeners(shared=None if several else DEFAULT_ORGANIZATION)
    shared = worker is not None and worker.count > 1
    metrics = app[METRICS] = Metrics(
        several=several, shared_directory=worker.metrics_directory if shared and worker else None
    )
    if metrics.shared:
        app.cleanup_ctx.append(_owned(metrics.sample, "metrics sampler"))
    buffer = app[INSPECTOR] = Buffer(config.inspect_exchanges)
    metrics.follow(metrics.inspector_exchanges, buffer.__len__)
    recording: tuple[Observer, ...] = ()
    sharing: CleanupContext | None = None  # one inspector for several workers
    if config.inspector != "off":
        recording = (buffer.observe,)
        if shared and worker:
            observe, sharing = sharing_inspector.across_workers(app, worker)
            recording = (observe,)
    app[OBSERVERS] = (logs.access_log(several=several), metrics.observe, *recording)
    app.on_shutdown.append(inspector.end_streams)
    app[REPLAY_BUDGET] = ReplayBudget(config.replay_budget_bytes)
    app[IN_FLIGHT] = InFlight(config.max_requests_in_flight)
    app[STREAMING_SLOTS] = asyncio.Semaphore(streaming_share(config.upstream_pool_size))
    app.cleanup_ctx.append(_upstream_sessions(tls_context, proxies))
    app.cleanup_ctx.append(_token_caches(clock, sleep, tls_context, proxies))
    app.cleanup_ctx.append(secret_expiry.watch())
    if sharing is not None:
        app.cleanup_ctx.append(sharing)
    # Routing is the handler's own (see proxy.handler): this one route only gives aiohttp
    # something to match.
    # Expect too is the chain's (behind aiohttp's own runner as well, as in some tests).
    app.router.add_route("*", r"/{path:[\s\S]*}", _unreachable, expect_handler=_in_the_chain)
    return app


def _owned(run: Callable[[], Coroutine[object, object, None]], name: str) -> CleanupContext:
    """A task that runs while the application does, cancelled and awaited at its end."""

    async def owned(app: web.Application) -> AsyncIterator[None]:
        async with tasks.owned(run(), name):
            yield

    return owned


def ops_app(app: web.Application) -> web.Application:
    """The proxy's own endpoints alone, for the ``--metrics-listen`` address; shares the
    running ``app``'s state (its token caches, metrics and access rules)."""
    ops = web.Application(middlewares=[handle_ops])
    ops[LIVE], ops[METRICS], ops[OBSERVERS] = app[LIVE], app[METRICS], app[OBSERVERS]
    ops[TOKEN_CACHES] = app[TOKEN_CACHES]
    ops.router.add_route("*", r"/{path:[\s\S]*}", _unreachable, expect_handler=_in_the_chain)
    return ops


async def _in_the_chain(request: web.Request) -> None:
    """aiohttp's answer to Expect, replaced: proxy.refusals and proxy.bodies answer it."""


async def _unreachable(request: web.Request) -> web.StreamResponse:
    raise AssertionError("proxy.handler.handle answers every request")


def token_session(
    config: Config,
    proxies: egress.EgressProxies,
    tls_context: ssl.SSLContext | None = None,
    *,
    organization: Organization,
) -> aiohttp.ClientSession:
    """The session an organization's token requests go through, for the proxy and for
    ``check`` alike.

    A session of its own: token requests never pass through the upstream session's settings
    (long read timeouts, shared pool) and never carry a Bearer token; and one per organization,
    so that one organization's hanging token endpoint holds no connection another one needs.
    """
    url = organization.token_url
    route = proxies.route(url)
    whose = "" if config.single_organization else f" of {organization.name}"
    egress.announce(f"token endpoint{whose}", url, route)
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
        # Idle connections are closed before the upstream's own idle timeout would close them
        # under a request that is just reusing one.
        pooled = aiohttp.TCPConnector(
            limit=config.upstream_pool_size,
            keepalive_timeout=config.upstream_keepalive_seconds,
            ssl=tls_context,
        )
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
        read_bufsize=UPSTREAM_READ_BUFFER_BYTES,
        # One session serves every client: a cookie set for one must never be sent for another.
        cookie_jar=aiohttp.DummyCookieJar(),
        proxy=proxy,
    )


def credentials(config: Config, organization: Organization) -> Credentials:
    """What an organization's token endpoint is asked with, taken from the configuration."""
    return Credentials(
        token_url=organization.token_url,
        client_id=organization.client_id,
        scope=organization.scope,
        client_auth=organization.client_auth,
        timeout_seconds=config.token_timeout_seconds,
        default_lifetime_seconds=config.default_token_lifetime_seconds,
        secret=organization.client_secret,
        secret_file=organization.client_secret_file,
    )


def _token_caches(
    clock: Clock, sleep: Sleep, tls_context: ssl.SSLContext, proxies: egress.EgressProxies
) -> CleanupContext:
    """One token cache per organization, each with its own session, backoff and negative
    cache: one organization's failing token endpoint or rejected secret touches no other."""

    async def token_caches(app: web.Application) -> AsyncIterator[None]:
        live = app[LIVE]
        caches: dict[str, TokenCache] = {}
        app[TOKEN_CACHES] = caches
        async with contextlib.AsyncExitStack() as stack:
            for organization in live.config.organizations:
                session = await stack.enter_async_context(
                    token_session(live.config, proxies, tls_context, organization=organization)
                )
                cache = _token_cache(app, organization.name, session, clock, sleep)
                caches[organization.name] = cache
                stack.push_async_callback(cache.aclose)
            for cache in caches.values():
                cache.start()
            yield

    return token_caches


def _token_cache(
    app: web.Application, name: str, session: aiohttp.ClientSession, clock: Clock, sleep: Sleep
) -> TokenCache:
    live, metrics = app[LIVE], app[METRICS]
    for outcome in TOKEN_OUTCOMES:  # every outcome exported from the start, at 0
        metrics.token_fetches_of(name, outcome)

    async def fetch() -> Grant:
        # The organization's credentials in force now: a reload may have changed them.
        config = live.config
        try:
            return await TokenClient(
                session, credentials(config, config.organization(name))
            ).fetch()
        except TokenError as exc:
            # The demo's own advice to clients, instead of "run smartdoc-proxy check".
            exc.advice = config.token_failure_advice or exc.advice
            raise

    cache = TokenCache(
        fetch,
        refresh_margin_seconds=live.config.refresh_margin_seconds,
        clock=clock,
        sleep=sleep,
        observe=lambda outcome: metrics.token_fetches_of(name, outcome).inc(),
        name=None if live.config.single_organization else name,
    )
    metrics.follow(metrics.token_expiry_of(name), cache.seconds_until_expiry)
    return cache
