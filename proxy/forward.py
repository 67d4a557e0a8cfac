"""Forwarding one request to the upstream with the organization's token.

The chain reads as a sentence: :func:`forward` → :func:`_send_handling_401` → :func:`_send` →
:func:`_relay`. Whether a request can be resent after a 401 is decided by :func:`replayable`.

Exceptions::

    UpstreamError
    ├── UpstreamUnreachable   no connection, or the upstream closed it (→ 502)
    └── UpstreamTimeout       the upstream was slower than the read timeout (→ 504)
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web
from yarl import URL

from proxy import headers
from proxy.keys import BODY_BYTES, CONFIG, METRICS, RESENT, TOKENS, UPSTREAM_SESSION
from proxy.tokens import Token

logger = logging.getLogger(__name__)

# aiohttp adds these to every request unless told not to; the upstream must receive only what
# the client sent (a Content-Type on a GET included, and no invented User-Agent).
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")

Body = bytes | AsyncIterator[bytes] | None

# Methods the proxy answers itself: CONNECT asks for a tunnel, and TRACE would echo the request,
# the organization's token included, back to the client (RFC 9110 §9.3.8).
REFUSED_METHODS = {
    "CONNECT": "this is a reverse proxy, not a tunnel",
    "TRACE": "TRACE would echo the organization's token back to the client",
}


class UpstreamError(Exception):
    """The upstream could not be asked or did not answer."""


class UpstreamUnreachable(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    pass


def replayable(content_length: int | None, has_body: bool, limit: int) -> bool:
    """Can the body be kept in memory so the request can be resent after a 401?

    Yes when there is none, or when its announced length is within the limit. A body of unknown
    length (chunked) is streamed: buffering it could take unbounded memory.
    """
    if not has_body:
        return True
    return content_length is not None and content_length <= limit


def upstream_url(upstream: URL, raw_target: str) -> URL:
    """The upstream URL for a request target, with path and query exactly as the client sent.

    ``encoded=True`` stops yarl from re-quoting or normalising (``%2F`` stays, ``..`` stays).
    The target is appended to the configured origin, and it must start with "/": so the
    origin's authority ends where the target begins, and no target can choose another host.
    Raises :class:`ValueError` for a target that cannot be sent that way.
    """
    if not raw_target.startswith("/"):
        # absolute-form (RFC 9112 §3.2.2): keep its path and query, never its authority.
        raw_target = URL(raw_target, encoded=True).raw_path_qs
    if not raw_target.startswith("/"):
        raise ValueError("the request target has no absolute path")
    return URL(str(upstream) + raw_target, encoded=True)


def refusal(method: str, transfer_codings: list[str]) -> web.HTTPException | None:
    """The answer to a request the proxy must not forward, or ``None`` to forward it."""
    if method in REFUSED_METHODS:
        return web.HTTPMethodNotAllowed(method, [], text=REFUSED_METHODS[method])
    codings = ",".join(transfer_codings).replace(" ", "").lower()
    if codings and codings != "chunked":
        # RFC 9112 §6.1: a transfer coding the server does not understand gets 501. aiohttp
        # removes the chunking but not, say, gzip, which would reach the upstream unmarked.
        return web.HTTPNotImplemented(text=f"transfer coding {codings!r} is not supported")
    return None


@web.middleware
async def refusal_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Apply :func:`refusal` before routing has a say: a CONNECT target matches no route, and
    would otherwise get a 404 instead of the 405 that says what is wrong."""
    refused = refusal(request.method, request.headers.getall("Transfer-Encoding", []))
    if refused is not None:
        raise refused
    return await handler(request)


async def forward(request: web.Request) -> web.StreamResponse:
    """Send ``request`` upstream with a token and relay the answer."""
    body = await _body(request, request.app[CONFIG].replay_limit_bytes)
    upstream = await _send_handling_401(request, body)
    try:
        return await _relay(request, upstream)
    finally:
        upstream.release()


async def _body(request: web.Request, replay_limit: int) -> Body:
    if not request.body_exists:
        return None
    if replayable(request.content_length, True, replay_limit):
        return await request.read()
    # iter_any passes on whatever has arrived, without re-cutting it into fixed chunks: fewer,
    # larger writes. aiohttp's flow control pauses the socket when its buffer fills, so memory
    # stays bounded (bench/streaming.py measures it).
    return request.content.iter_any()


async def _send_handling_401(request: web.Request, body: Body) -> aiohttp.ClientResponse:
    # One resend at most: a 401 on a token fetched a moment ago means the credentials, not the
    # token, are the problem, and looping would hammer both endpoints.
    tokens = request.app[TOKENS]
    token = await tokens.get()
    response = await _send(request, token, body)
    if response.status != 401:
        return response
    tokens.invalidate(token)
    if not isinstance(body, bytes | None):
        logger.info("401 on a streamed body: not resent, token dropped")
        return response
    response.release()
    fresh = await tokens.get()
    request[RESENT] = True
    request.app[METRICS].resends.inc()
    return await _send(request, fresh, body)


async def _send(request: web.Request, token: Token, body: Body) -> aiohttp.ClientResponse:
    app = request.app
    outgoing = headers.request_headers(
        request.headers,
        token=token.value,
        client_ip=request.remote,
        proto=request.scheme,
        host=request.headers.get("Host"),
    )
    try:
        url = upstream_url(app[CONFIG].upstream, request.raw_path)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    started = time.perf_counter()
    try:
        response = await app[UPSTREAM_SESSION].request(
            request.method,
            url,
            headers=outgoing,
            data=body,
            allow_redirects=False,
            skip_auto_headers=SKIP_AUTO_HEADERS,
        )
    except aiohttp.SocketTimeoutError as exc:
        raise UpstreamTimeout(
            f"no answer within {app[CONFIG].upstream_read_timeout_seconds:g} s"
        ) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UpstreamUnreachable(f"cannot reach the upstream: {type(exc).__name__}") from exc
    app[METRICS].upstream_seconds.observe(time.perf_counter() - started)
    return response


class RelayedResponse(web.StreamResponse):
    """A response relayed from the upstream, carrying only the headers the upstream sent.

    aiohttp fills in ``Content-Type: application/octet-stream`` and its own ``Server`` when a
    response lacks them; a proxy must invent neither (``Date`` it may add: RFC 9110 §6.6.1).
    This overrides a private aiohttp method, the only place where those defaults are added
    (``on_response_prepare`` runs before it); a test fails if aiohttp changes that.
    """

    async def _prepare_headers(self) -> None:
        absent = [name for name in ("Content-Type", "Server") if name not in self.headers]
        await super()._prepare_headers()
        for name in absent:
            self.headers.popall(name, None)


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    response = RelayedResponse(
        status=upstream.status,
        reason=upstream.reason,
        headers=headers.response_headers(
            upstream.headers,
            upstream=request.app[CONFIG].upstream,
            proxy_origin=f"{request.scheme}://{request.host}",
        ),
    )
    await response.prepare(request)
    request[BODY_BYTES] = 0
    if request.method != "HEAD":
        # Once the status line is sent, a failure can only cut the connection, which the
        # exception does: the client then sees a short body, never a silently truncated one.
        # iter_any, as in _body, for fewer and larger writes.
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
            request[BODY_BYTES] += len(chunk)
    await response.write_eof()
    return response
