"""Requests the proxy answers itself instead of forwarding: a pure rule, table-tested.

Each refusal is an ``aiohttp.web.HTTPException`` carrying the headers its status needs, or a
:class:`~proxy.errors.ClientFault` when the connection must close after the answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from proxy.errors import MalformedRequest

# Methods the proxy answers itself: CONNECT asks for a tunnel, and TRACE would echo the request,
# the organization's token included, back to the client (RFC 9110 §9.3.8).
REFUSED_METHODS = {
    "CONNECT": "this is a reverse proxy, not a tunnel",
    "TRACE": "TRACE would echo the organization's token back to the client",
}
# What a 405 offers instead (RFC 9110 §15.5.6 requires Allow on every 405).
ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
SUPPORTED_VERSIONS = ((1, 0), (1, 1))


def refusal(
    method: str,
    version: tuple[int, int],
    transfer_codings: list[str],
    header_values: Iterable[str],
    expect: str | None = None,
) -> web.HTTPException | MalformedRequest | None:
    """The answer to a request the proxy must not forward, or ``None`` to forward it.
    ``expect``: its ``Expect`` header (a ``100-continue`` is answered by :mod:`proxy.bodies`,
    once the request has passed every check)."""
    if version not in SUPPORTED_VERSIONS:
        # HTTP/0.9 has no headers to carry a token in, nor a status line to answer with; an
        # "HTTP/2.0" in an HTTP/1 request line is no HTTP/2.
        name = "HTTP/0.9" if version < (1, 0) else f"HTTP/{version[0]}.{version[1]}"
        return web.HTTPVersionNotSupported(text=f"{name} is not supported: use HTTP/1.0 or 1.1")
    if method in REFUSED_METHODS:
        return web.HTTPMethodNotAllowed(method, ALLOWED_METHODS, text=REFUSED_METHODS[method])
    if transfer_codings and version < (1, 1):
        # RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (an
        # HTTP/1.0 hop before this one may not have understood it), and the connection closes.
        return MalformedRequest("an HTTP/1.0 request must not carry Transfer-Encoding")
    codings = ",".join(transfer_codings).replace(" ", "").lower()
    if codings and codings != "chunked":
        # RFC 9112 §6.1: a transfer coding the server does not understand gets 501. aiohttp
        # removes the chunking but not, say, gzip, which would reach the upstream unmarked.
        return web.HTTPNotImplemented(text=f"transfer coding {codings[:40]!r} is not supported")
    if expect is not None and expect.strip().lower() != "100-continue":
        # RFC 9110 §10.1.1: an expectation the server does not understand gets 417. The value
        # is not said back: it is the client's text.
        return web.HTTPExpectationFailed(text="the only expectation understood is 100-continue")
    values = list(header_values)
    # Almost every request's headers are ASCII: one test of them all together, in C, before
    # testing each value.
    if not "".join(values).isascii() and not all(_utf8(value) for value in values):
        # aiohttp keeps undecodable bytes as surrogates, which its client then drops
        # ("caf\xe9" would arrive as "caf"): refuse rather than forward something else.
        return web.HTTPBadRequest(text="a header value is not valid UTF-8")
    return None


def _utf8(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
