"""The one entry of every request: admit it, answer or forward it, and record it once.

Every error ends at one boundary, :func:`handle`, which answers it from the table in
:mod:`proxy.problems` while no status line has been sent; after that, the relay has already
cut the connection and recorded what really happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web
from aiohttp.typedefs import Handler

from proxy import ops, token_endpoint
from proxy.access import Access
from proxy.errors import KeyRequired, ProxyError, TooManyInFlight
from proxy.exchange import CLIENT_CLOSED, STOPPED, Exchange, record
from proxy.forward import forward
from proxy.keys import IN_FLIGHT, LISTENERS, LIVE, METRICS, OBSERVERS
from proxy.organizations import UNCHOSEN, organization_for
from proxy.problems import OTHER, answer, problem
from proxy.refusals import refusal

logger = logging.getLogger(__name__)


Route = Callable[[web.Request, Exchange], Awaitable[web.StreamResponse]]


# The middlewares hand back the chain's coroutine rather than awaiting it in one of their
# own: one frame fewer to pass each time a request's task resumes.


@web.middleware
def handle(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Every request, whatever route aiohttp matched: a CONNECT's authority-form target or a
    %0A in a path matches none, yet must reach the same chain. (aiohttp resolves routes before
    middlewares run, so this middleware is where the chain starts; ``handler`` is unused.)"""
    return _handle(request, _route)


@web.middleware
def handle_ops(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """The ``--metrics-listen`` address: the proxy's own endpoints only, without a key."""
    return _handle(request, _route_ops)


async def _handle(request: web.Request, route: Route) -> web.StreamResponse:
    exchange = Exchange(request.method, request.raw_path, request.remote)
    exchange.own = ops.is_own(request.raw_path)
    exchange.request_headers = request.headers
    try:
        with request.app[METRICS].in_flight.track_inprogress():
            response = await _answer(request, exchange, route)
    except asyncio.CancelledError:
        in_flight = request.app.get(IN_FLIGHT)
        if in_flight is not None and in_flight.stopping:
            # Cut at the end of the shutdown's grace: not the client's doing (499), and
            # recorded as what the client saw, a failure of the proxy's.
            exchange.cut = exchange.cut or STOPPED
            if not exchange.response_started:
                exchange.status = HTTPStatus.SERVICE_UNAVAILABLE.value
        raise
    finally:
        exchange.request_bytes = request.content.total_bytes
        record(exchange, request.app[OBSERVERS])
    return response


async def _answer(request: web.Request, exchange: Exchange, route: Route) -> web.StreamResponse:
    try:
        response = await route(request, exchange)
    except (ProxyError, web.HTTPException) as exc:
        response = answer(exc)
    except ConnectionError:
        # The client went away (mid-upload, or before its answer): no one to answer, and no
        # fault of the proxy's. Recorded as 499, with no traceback.
        exchange.cut = "client gone"
        return web.Response(status=CLIENT_CLOSED)
    except Exception:
        logger.exception("unexpected error handling %s %s", exchange.method, exchange.path)
        if exchange.response_started:
            # Too late for an answer: cut the connection so the client sees a short body.
            exchange.cut = "internal error"
            if request.transport is not None:
                request.transport.close()
            raise
        response = problem(OTHER.status, OTHER.slug, OTHER.title, "see the proxy's log")
    exchange.response_headers = response.headers
    if not exchange.response_started and exchange.cut is None:
        exchange.status = response.status
        body = response.body if isinstance(response, web.Response) else None
        if isinstance(body, bytes) and request.method != "HEAD":
            exchange.body_bytes = len(body)
    return response


async def _route(request: web.Request, exchange: Exchange) -> web.StreamResponse:
    live, listeners = request.app[LIVE], request.app[LISTENERS]
    # The organization of the address it came to, until its key says more: recorded even for
    # a request refused below.
    serves = listeners.serving(_sockname(request))
    exchange.organization = serves or UNCHOSEN
    refused = refusal(
        request.method,
        request.version,
        request.headers.getall("Transfer-Encoding", []),
        request.headers.values(),
        request.headers.get("Expect"),
    )
    if refused is not None:
        raise refused
    # Admit the client: its network first (403), then, where keys are required, its key (401),
    # which also decides its organization where the address does not.
    live.access.check_network(request.remote)
    if token_endpoint.is_token_request(request.path):
        return await token_endpoint.answer(request, live.access, live.config.scope, serves)
    if exchange.own and serves is None:
        # The proxy's own endpoints answer on every address, the shared one of several
        # organizations included: no organization to choose, only a key where keys exist.
        _own_endpoint_caller(live.access, request, exchange, ops.keyless(request.path, live.config))
    elif not (exchange.own and ops.keyless(request.path, live.config)):
        presented = live.access.presented(request.headers)
        caller = organization_for(serves, presented, live.access.keyed, listeners.addresses)
        exchange.organization, exchange.client = caller.organization, caller.client
    if exchange.own:
        # Never capped: the probes and metrics must answer while the proxy is at its cap.
        return await ops.serve(request)
    in_flight = request.app[IN_FLIGHT]
    if not in_flight.admit():
        raise TooManyInFlight(
            f"{in_flight.cap} requests are being forwarded, the most allowed at once",
            retry_after_seconds=1,
        )
    try:
        return await forward(request, exchange)
    finally:
        in_flight.leave()


def _own_endpoint_caller(
    access: Access, request: web.Request, exchange: Exchange, keyless: bool
) -> None:
    if keyless or access.keys is None:
        return
    presented = access.presented(request.headers)
    if presented is None:
        raise KeyRequired(
            "a key is required: send it as an X-Proxy-Key header, as the password of HTTP "
            "Basic authentication, or as a Bearer token from this proxy's /connect/token"
        )
    exchange.organization, exchange.client = presented.organization, presented.name


def _sockname(request: web.Request) -> object:
    """The local address the request's connection came in on."""
    return request.transport.get_extra_info("sockname") if request.transport else None


async def _route_ops(request: web.Request, exchange: Exchange) -> web.StreamResponse:
    exchange.organization = UNCHOSEN  # this address serves no organization's requests
    request.app[LIVE].access.check_network(request.remote)
    if not exchange.own:
        raise web.HTTPNotFound(text="this address serves only the proxy's own /_proxy/ endpoints")
    return await ops.serve(request)
