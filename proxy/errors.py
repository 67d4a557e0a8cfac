"""Every failure the proxy names, in one tree; :mod:`proxy.problems` turns each into HTTP.

::

    ProxyError                  a failure of the proxy's own, answered as problem+json
    ├── AccessDenied            the client's address is not admitted (→ 403)
    ├── KeyRequired             no key, or a wrong one, where keys are required (→ 401)
    ├── TokenError              nothing usable came back from the token endpoint
    │   ├── TokenRejected       it refused the credentials (→ 502)
    │   ├── TokenUnavailable    unreachable, too slow, 5xx/429 or an unreadable answer (→ 503)
    │   └── SecretUnreadable    the proxy cannot read its own secret file (→ 502)
    ├── UpstreamError           the upstream could not be asked, or did not answer
    │   ├── UpstreamUnreachable no connection, or it closed one before answering (→ 502)
    │   ├── UpstreamBusy        no pooled connection came free in time (→ 503)
    │   └── UpstreamTimeout     it was slower than the read timeout (→ 504)
    ├── TooManyInFlight         the cap on requests being forwarded is reached (→ 503)
    └── ClientFault             the client's request broke one of the limits (the connection
        │                       is closed after the answer: the rest is not read)
        ├── MalformedRequest    aiohttp's HTTP parser rejected the request (→ 400)
        ├── RequestLineTooLong  the request line is over its limit (→ 414)
        ├── HeadTooLarge        the headers are too many or too large together (→ 431)
        ├── HeadTimeout         the request head did not arrive in time (→ 408)
        ├── BodyTimeout         the body stalled, or took too long in all (→ 408)
        └── BodyTooLarge        the body is over the size limit (→ 413)

A request the proxy refuses to forward (TRACE, an odd transfer coding, bad header bytes) is an
``aiohttp.web.HTTPException``: it carries the headers its status needs, such as ``Allow``.

``detail`` is always safe to show a client: it never holds a secret, a token, or text that
came from the token endpoint. ``retry_after_seconds`` is set where waiting helps.
"""

from __future__ import annotations

from typing import Self


class ProxyError(Exception):
    """Base of the proxy's own failures."""

    def __init__(self, detail: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_seconds = retry_after_seconds


class AccessDenied(ProxyError):
    """The TCP peer is neither on loopback nor in an allowed network."""


class KeyRequired(ProxyError):
    """Keys are required, and the request presents none that is listed."""


class TokenError(ProxyError):
    """No token. ``code`` is the endpoint's OAuth error code, only if it is one of RFC 6749
    §5.2's; ``description`` is the endpoint's own text, redacted, for the log and ``check``
    only: it never reaches a client. ``advice``, when set, is what a client is told to do
    about it instead of the default (the demo sets it)."""

    outcome = "unavailable"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        description: str | None = None,
        retry_after_seconds: float | None = None,
        advice: str | None = None,
    ) -> None:
        super().__init__(detail, retry_after_seconds=retry_after_seconds)
        self.code = code
        self.description = description
        self.advice = advice

    def again(self, retry_after_seconds: float) -> Self:
        """The same failure, served again from the negative cache."""
        return type(self)(
            self.detail,
            code=self.code,
            description=self.description,
            retry_after_seconds=retry_after_seconds,
            advice=self.advice,
        )


class TokenRejected(TokenError):
    """The token endpoint refused the credentials (``invalid_client`` and the like)."""

    outcome = "rejected"


class TokenUnavailable(TokenError):
    """The token endpoint could not be reached, was too slow, or failed on its side."""

    outcome = "unavailable"


class SecretUnreadable(TokenError):
    """The client secret file cannot be read: a fault of this machine, not of the vendor."""

    outcome = "secret_unreadable"


class UpstreamError(ProxyError):
    """The upstream could not be asked or did not answer."""


class UpstreamUnreachable(UpstreamError):
    pass


class UpstreamBusy(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    pass


class TooManyInFlight(ProxyError):
    """As many requests as the cap allows are being forwarded already."""


class ClientFault(ProxyError):
    """The client's request broke one of the limits in :mod:`proxy.limits`."""


class MalformedRequest(ClientFault):
    pass


class RequestLineTooLong(ClientFault):
    pass


class HeadTooLarge(ClientFault):
    pass


class HeadTimeout(ClientFault):
    pass


class BodyTimeout(ClientFault):
    pass


class BodyTooLarge(ClientFault):
    pass


TOKEN_OUTCOMES = ("success", TokenRejected.outcome, TokenUnavailable.outcome,
                  SecretUnreadable.outcome)  # fmt: skip
