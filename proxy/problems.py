"""The one boundary where the proxy's own failures become HTTP answers.

Every failure of the proxy's own (not the upstream's: its responses pass through untouched) is
answered as ``application/problem+json`` (RFC 9457), the format the SmartDocumentor API uses,
through one table, :data:`PROBLEMS`. Details come from the exception's safe fields only: never a
token, a secret, or text the token endpoint sent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from aiohttp import web

from proxy.errors import (
    AccessDenied,
    BodyTimeout,
    BodyTooLarge,
    HeadTimeout,
    HeadTooLarge,
    KeyRequired,
    MalformedRequest,
    ProxyError,
    RequestLineTooLong,
    SecretUnreadable,
    TokenError,
    TokenRejected,
    TokenUnavailable,
    TooManyInFlight,
    UpstreamBusy,
    UpstreamTimeout,
    UpstreamUnreachable,
)

PROBLEM_TYPE = "application/problem+json"
TYPE_BASE = "urn:smartdoc-proxy:problem:"
# The proxy's own answers name the software, never its version (nor aiohttp's).
SERVER = "smartdoc-proxy"
CHECK_ADVICE = "Run `smartdoc-proxy check` to see what the token endpoint says."


@dataclass(frozen=True)
class Problem:
    status: int
    slug: str
    title: str
    retry: bool = False  # send Retry-After: waiting is what helps
    headers: tuple[tuple[str, str], ...] = ()
    # Close the connection after the answer: what is left of the request is not read.
    close: bool = False


PROBLEMS: dict[type[ProxyError], Problem] = {
    AccessDenied: Problem(403, "access-denied", "This address may not use the proxy"),
    KeyRequired: Problem(401, "key-required", "A key for the proxy is required",
                         headers=(("WWW-Authenticate", 'Basic realm="smartdoc-proxy"'),)),
    TokenRejected: Problem(502, "token-rejected",
                           "SmartDocumentor rejected the proxy's credentials"),
    SecretUnreadable: Problem(502, "secret-unreadable", "The proxy cannot read its client secret"),
    TokenUnavailable: Problem(503, "token-unavailable",
                              "No token could be obtained from SmartDocumentor", retry=True),
    UpstreamUnreachable: Problem(502, "upstream-unreachable", "SmartDocumentor is unreachable"),
    UpstreamBusy: Problem(503, "upstream-busy",
                          "No connection to SmartDocumentor came free in time", retry=True),
    UpstreamTimeout: Problem(504, "upstream-timeout", "SmartDocumentor did not answer in time"),
    TooManyInFlight: Problem(503, "too-many-in-flight",
                             "The proxy is forwarding as many requests as it may", retry=True),
    MalformedRequest: Problem(400, "malformed-request", "The request is not valid HTTP/1.1",
                              close=True),
    RequestLineTooLong: Problem(414, "request-line-too-long", "The request line is too long",
                                close=True),
    HeadTooLarge: Problem(431, "headers-too-large", "The request's headers are too large",
                          close=True),
    HeadTimeout: Problem(408, "header-timeout", "The request's headers did not arrive in time",
                         close=True),
    BodyTimeout: Problem(408, "body-timeout", "The request's body did not arrive in time",
                         close=True),
    BodyTooLarge: Problem(413, "body-too-large", "The request's body is too large", close=True),
}  # fmt: skip
OTHER = Problem(500, "internal", "The proxy failed to handle the request")


def problem_for(exc: ProxyError) -> Problem:
    for kind in type(exc).__mro__:
        if kind in PROBLEMS:
            return PROBLEMS[kind]
    return OTHER


def detail_of(exc: ProxyError) -> str:
    if isinstance(exc, TokenError) and exc.advice:
        return f"{exc.detail}. {exc.advice}"
    if isinstance(exc, TokenRejected):
        return f"{exc.detail}: the client id or secret was rejected or has expired. {CHECK_ADVICE}"
    return exc.detail


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> web.Response:
    """A Problem Details response."""
    body = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail} | extra
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type=PROBLEM_TYPE,
        headers={"Server": SERVER, **(headers or {})},
    )


def answer(exc: ProxyError | web.HTTPException, *, status: int | None = None) -> web.Response:
    """The answer to one of the proxy's failures; ``status`` overrides the table's (readiness
    is 503 whatever the reason, as probes expect)."""
    if isinstance(exc, web.HTTPException):
        # Keeps what the status needs, such as Allow for 405 (RFC 9110 §15.5.6).
        kept = {k: v for k, v in exc.headers.items() if k.lower() not in _FRAMING}
        return problem(exc.status, f"http-{exc.status}", exc.reason, exc.text or exc.reason, kept)
    entry = problem_for(exc)
    headers = dict(entry.headers)
    if entry.retry:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_seconds or 1)))
    extra = {"code": exc.code} if isinstance(exc, TokenError) and exc.code else {}
    response = problem(
        status or entry.status, entry.slug, entry.title, detail_of(exc), headers, **extra
    )
    if entry.close:
        response.force_close()
    return response


_FRAMING = frozenset({"content-type", "content-length", "server", "date"})
