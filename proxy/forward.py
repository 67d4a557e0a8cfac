"""Forwarding one request to the upstream with the organization's token.

The chain reads as a sentence: :func:`forward` builds the :class:`Outgoing` request once
(:func:`outgoing`), gets a token and sends it (:func:`_send_with_token`, which resends once
after a 401 as :mod:`proxy.policy` decides, and retries once on a dead keep-alive connection),
then relays the answer (:func:`_relay`). Failures are raised as :mod:`proxy.errors`; the
boundary in :mod:`proxy.handler` answers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from proxy import bodies, headers
from proxy.errors import UpstreamBusy, UpstreamTimeout, UpstreamUnreachable
from proxy.exchange import CLIENT_GONE, STOPPED, Exchange, body_tee, kept_body
from proxy.grants import unreachable_reason
from proxy.keys import FRESH_SESSION, IN_FLIGHT, LIVE, TOKEN_CACHES, UPSTREAM_SESSION
from proxy.policy import IDEMPOTENT_METHODS, may_retry_stale
from proxy.tokens import Token

logger = logging.getLogger(__name__)

# aiohttp adds these to every request unless told not to; the upstream must receive only what
# the client sent (a Content-Type on a GET included, and no invented User-Agent).
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")

# What a keep-alive connection the upstream has closed looks like when it is reused.
STALE_CONNECTION = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
# An answer announced at most this long is read whole and sent in one write.
SMALL_ANSWER = 64 * 1024
# What cuts an answer short once it is on its way to the client.
CUT_UPSTREAM = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError)


@dataclass(frozen=True)
class Outgoing:
    """The request to send upstream, decided once: everything but the token."""

    method: str
    url: URL
    headers: CIMultiDict[str]
    body: bodies.Body
    replayable: bool

    def with_token(self, token: Token) -> CIMultiDict[str]:
        sent = self.headers.copy()
        sent["Authorization"] = f"Bearer {token.value}"
        return sent


def upstream_url(upstream: URL, raw_target: str) -> URL:
    """The upstream URL for a request target, with path and query exactly as the client sent.

    ``encoded=True`` stops yarl from re-quoting or normalising (``%2F`` stays, ``..`` stays).
    The target is appended to the configured origin, and it must start with "/": so the
    origin's authority ends where the target begins, and no target can choose another host.
    Raises :class:`ValueError` for a target that cannot be sent that way.
    """
    if not raw_target.startswith("/"):
        # absolute-form (RFC 9112 §3.2.2): only for the upstream's own origin, and then its
        # path and query; a target naming any other origin asks for an open proxy.
        absolute = URL(raw_target, encoded=True)
        if absolute.is_absolute() and absolute.origin() != upstream.origin():
            raise ValueError("an absolute-form target for another origin is not forwarded")
        raw_target = absolute.raw_path_qs
    if not raw_target.startswith("/"):
        raise ValueError("the request target has no absolute path")
    return URL(str(upstream) + raw_target, encoded=True)


async def forward(request: web.Request, exchange: Exchange) -> web.StreamResponse:
    """Send ``request`` upstream with a token and relay the answer."""
    async with contextlib.AsyncExitStack() as held:
        sending = await outgoing(request, held)
        if request.app[LIVE].config.keeps_bodies and isinstance(sending.body, bytes):
            exchange.request_body = kept_body(request.headers, sending.body)
        upstream = await _send_with_token(request.app, sending, exchange)
        try:
            return await _relay(request, upstream, exchange)
        finally:
            upstream.release()


async def outgoing(request: web.Request, held: contextlib.AsyncExitStack) -> Outgoing:
    """Method, URL, headers and body for the upstream: decided before any token is fetched,
    so that a target that cannot be sent never costs a token request. What the body holds
    while it is forwarded is released when ``held`` closes (see :mod:`proxy.bodies`)."""
    config = request.app[LIVE].config
    try:
        url = upstream_url(config.upstream, request.raw_path)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    sent_headers = headers.request_headers(
        request.headers,
        client_ip=request.remote,
        proto=request.scheme,
        host=request.headers.get("Host"),
    )
    # A streamed body passes on whatever has arrived, without re-cutting it into fixed
    # chunks: fewer, larger writes. aiohttp's flow control pauses the socket when its buffer
    # fills, so memory stays bounded (bench/streaming.py measures it).
    body, keep = await bodies.prepare(request, held)
    return Outgoing(request.method, url, sent_headers, body, keep)


async def _send_with_token(
    app: web.Application, sending: Outgoing, exchange: Exchange
) -> aiohttp.ClientResponse:
    # The organization's own token: never another's, whatever the request says.
    tokens = app[TOKEN_CACHES][exchange.organization]
    token = await tokens.get()
    response = await _send(app, sending, token, exchange)
    if response.status != 401:
        tokens.accepted(token)
        return response
    # The 401 stays open while the token is replaced: if no resend follows, it is relayed.
    fresh = await tokens.replacement(token)
    if fresh is None or not sending.replayable:
        return response
    response.release()
    exchange.resent = True
    response = await _send(app, sending, fresh, exchange)
    if response.status != 401:
        tokens.accepted(fresh)
    return response


async def _send(
    app: web.Application, sending: Outgoing, token: Token, exchange: Exchange
) -> aiohttp.ClientResponse:
    started, timeout = time.perf_counter(), app[LIVE].config.upstream_read_timeout_seconds
    exchange.upstream_request_headers = sending.headers  # as sent, but for the token
    try:
        response = await _request(app[UPSTREAM_SESSION], sending, token)
    except STALE_CONNECTION as exc:
        if not _stale(exc) or not may_retry_stale(sending.method, sending.replayable):
            raise _unreachable(exc, sending, timeout) from exc
        # A pooled connection the upstream had closed: once more, on a new connection (the
        # pool may hold other connections gone stale at the same moment).
        logger.info("upstream connection was closed; %s retried once", sending.method)
        exchange.retried = True
        try:
            response = await _request(app[FRESH_SESSION], sending, token)
        except (aiohttp.ClientError, TimeoutError) as again:
            raise _unreachable(again, sending, timeout) from again
    except (aiohttp.ClientError, TimeoutError) as exc:
        # A streamed body that stalled or grew too large is the client's fault, not the
        # upstream's.
        raise bodies.fault_of(exc) or _unreachable(exc, sending, timeout) from exc
    exchange.upstream_seconds.append(time.perf_counter() - started)
    return response


def _request(
    session: aiohttp.ClientSession, sending: Outgoing, token: Token
) -> Awaitable[aiohttp.ClientResponse]:
    # Not a coroutine of its own: the caller awaits aiohttp's, one frame fewer to pass each
    # time the request's task resumes.
    return session.request(
        sending.method,
        sending.url,
        headers=sending.with_token(token),
        data=sending.body,
        allow_redirects=False,
        skip_auto_headers=SKIP_AUTO_HEADERS,
    )


def _stale(exc: BaseException) -> bool:
    # A connection error other than "it closed or reset under us" (refused, DNS, TLS) is no
    # stale connection and is not retried.
    return not isinstance(exc, aiohttp.ClientConnectorError)


def _unreachable(exc: BaseException, sending: Outgoing, read_timeout_seconds: float) -> Exception:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamBusy(
            "no connection to the upstream within the pool timeout: every pooled connection is "
            "busy, or the upstream is slow to accept",
            retry_after_seconds=1,
        )
    if isinstance(exc, aiohttp.SocketTimeoutError | asyncio.TimeoutError):
        detail = f"the upstream sent nothing for {read_timeout_seconds:g} s"
        if sending.method not in IDEMPOTENT_METHODS:
            # It was sent, so it may have been acted on: the client must check, not resend.
            detail += f"; the {sending.method} request may have been processed"
        return UpstreamTimeout(detail)
    detail = f"the upstream {unreachable_reason(exc)}"
    if _stale(exc) and isinstance(exc, STALE_CONNECTION):
        if may_retry_stale(sending.method, sending.replayable):
            detail += ", on a new connection too"
        else:
            # Nothing lost silently: the client learns that it must check before resending.
            detail += (
                f"; the {sending.method} request may have been processed, so it was not sent again"
            )
    return UpstreamUnreachable(detail)


class RelayedResponse(web.StreamResponse):
    """A response relayed from the upstream, carrying only the headers the upstream sent.

    aiohttp fills in ``Content-Type: application/octet-stream`` and its own ``Server`` when a
    response lacks them; a proxy must invent neither (``Date`` it may add: RFC 9110 §6.6.1).
    This overrides a private aiohttp method, the only place where those defaults are added
    (``on_response_prepare`` runs before it); a test fails if aiohttp changes that.
    """

    # Headers wait for the first body bytes and leave in the same write (as aiohttp's own
    # Response does): a small answer costs one send, not two.
    _send_headers_immediately = False

    async def _prepare_headers(self) -> None:
        absent = [name for name in ("Content-Type", "Server") if name not in self.headers]
        await super()._prepare_headers()
        for name in absent:
            self.headers.popall(name, None)


async def _relay(
    request: web.Request, upstream: aiohttp.ClientResponse, exchange: Exchange
) -> web.StreamResponse:
    config = request.app[LIVE].config
    response = RelayedResponse(
        status=upstream.status,
        reason=upstream.reason,
        headers=headers.response_headers(
            upstream.headers, upstream=config.upstream, public_origin=config.public_origin
        ),
    )
    small = (
        request.method != "HEAD"
        and upstream.content_length is not None
        and upstream.content_length <= SMALL_ANSWER
    )
    # A small answer is read whole before its status line is sent: if the upstream cuts it
    # short, the client still gets a proper 502 rather than a cut connection.
    body = await _read_small(upstream, exchange) if small else None
    try:
        await response.prepare(request)
    except ConnectionError:
        # The client left before its answer could start: nothing to send, nothing to log
        # beyond its access line (499).
        exchange.cut = CLIENT_GONE
        return response
    exchange.status, exchange.response_started = upstream.status, True
    exchange.upstream_response_headers = upstream.headers
    tee = body_tee(upstream.headers, config.keeps_bodies and request.method != "HEAD")
    try:
        if request.method == "HEAD":
            await response.write_eof()
        elif body is not None:
            # Sent with the end of the answer: one write, headers and all, as aiohttp's own
            # Response does.
            if tee is not None:
                tee.add(body)
            await response.write_eof(body)
            exchange.body_bytes += len(body)
        else:
            # iter_any, as for request bodies, for fewer and larger writes.
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
                exchange.body_bytes += len(chunk)
                if tee is not None:
                    tee.add(chunk)
            await response.write_eof()
    except asyncio.CancelledError:
        # aiohttp cancels the handler of a client that left, and at shutdown of a request
        # still running after the grace: either way the answer ends here, short.
        # (aiohttp closes the connection of one cut at shutdown before the cancellation
        # arrives, so the shutdown is asked first.)
        stopping = request.app[IN_FLIGHT].stopping
        _said_cut(exchange, STOPPED if stopping else CLIENT_GONE)
        raise
    except CUT_UPSTREAM as exc:
        # aiohttp raises its client's connection errors for the server's writes to a client
        # that left as well: who went away is told by whose connection is closing.
        why = CLIENT_GONE if _client_gone(request) else f"upstream {unreachable_reason(exc)}"
        return _cut(request, response, exchange, why)
    except ConnectionError:
        return _cut(request, response, exchange, CLIENT_GONE)
    if tee is not None:
        exchange.response_body = tee.body()
    return response


async def _read_small(upstream: aiohttp.ClientResponse, exchange: Exchange) -> bytes:
    try:
        return await upstream.read()  # bounded by the announced length
    except CUT_UPSTREAM as exc:
        raise UpstreamUnreachable(
            f"the upstream {unreachable_reason(exc)} after its status line; the "
            f"{exchange.method} request may have been processed"
        ) from exc


def _cut(
    request: web.Request, response: web.StreamResponse, exchange: Exchange, why: str
) -> web.StreamResponse:
    """Close the client's connection mid-answer, so that it sees a short body rather than a
    complete-looking one (a chunked answer would otherwise get its last chunk)."""
    _said_cut(exchange, why)
    if request.transport is not None:
        request.transport.close()
    return response


def _said_cut(exchange: Exchange, why: str) -> None:
    exchange.cut = why
    # A client that leaves is routine; an upstream that cuts its answer is worth a warning.
    logger.log(
        logging.INFO if why == CLIENT_GONE else logging.WARNING,
        "answer to %s %s cut after %d bytes: %s",
        exchange.method,
        exchange.path,
        exchange.body_bytes,
        why,
    )


def _client_gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()
