"""The record of one exchange: built as the request passes, handed once to every observer.

Facts flow forward into the record (the forwarder sets ``resent``, the relay counts bytes);
observers (access log, metrics, the inspector) only read a finished record and never reach back
into the request.

For the inspector the record also holds the headers on both sides of the proxy, as references
to the multidicts that were sent or received (no copies: none changes once it has passed), and,
with ``--inspect-bodies``, textual bodies up to :data:`BODY_LIMIT_BYTES`. It never holds the
organization's token: the upstream's request headers are taken before the token is added.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from multidict import MultiMapping

# nginx's convention for "the client went away before the answer": no status was sent.
CLIENT_CLOSED = 499
# Why an answer was cut short (Exchange.cut), where the proxy itself decides it.
CLIENT_GONE = "client gone"
STOPPED = "stopped at shutdown"
# Bodies kept for the inspector (--inspect-bodies): textual ones, up to this size a side.
BODY_LIMIT_BYTES = 64 * 1024
TEXTUAL_TYPES = ("application/json", "application/x-www-form-urlencoded", "application/xml")
Headers = MultiMapping[str]


@dataclass(slots=True)
class Exchange:
    """One request and what became of it."""

    method: str
    # The target as received, never decoded: decoding would let a %0A forge a log line.
    raw_target: str
    peer: str | None
    client: str = "anonymous"
    # The organization whose token the request used ("default" with one organization).
    organization: str = "default"
    started: float = field(default_factory=time.perf_counter)
    status: int = CLIENT_CLOSED
    response_started: bool = False
    body_bytes: int = 0
    resent: bool = False
    retried: bool = False
    # Seconds from sending to the response headers, for each attempt sent upstream.
    upstream_seconds: list[float] = field(default_factory=list)
    duration_seconds: float = 0.0
    # Answered by the proxy's own endpoints (/_proxy/*), not forwarded.
    own: bool = False
    # What cut the exchange short after its status line: "upstream cut", "client gone", …
    cut: str | None = None
    # Request body bytes received from the client.
    request_bytes: int = 0
    # The headers as they passed: client -> proxy, proxy -> upstream (without the token),
    # upstream -> proxy, proxy -> client. None where that leg did not happen. Neither they
    # nor the bodies are in the repr: a client's key, or a token said back, may be in them.
    request_headers: Headers | None = field(default=None, repr=False)
    upstream_request_headers: Headers | None = field(default=None, repr=False)
    upstream_response_headers: Headers | None = field(default=None, repr=False)
    response_headers: Headers | None = field(default=None, repr=False)
    # With --inspect-bodies: the textual bodies, whole, when at most BODY_LIMIT_BYTES.
    request_body: bytes | None = field(default=None, repr=False)
    response_body: bytes | None = field(default=None, repr=False)

    @property
    def path(self) -> str:
        return self.raw_target.partition("?")[0]

    def finish(self) -> None:
        self.duration_seconds = time.perf_counter() - self.started


def textual(headers: Headers) -> bool:
    """Is a body with these headers text that a person can read (JSON, text, a form)?
    A compressed one is not: its bytes are gzip's, not the text's."""
    if headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        return False
    media = headers.get("Content-Type", "").partition(";")[0].strip().lower()
    return media.startswith("text/") or media.endswith("+json") or media in TEXTUAL_TYPES


def kept_body(headers: Headers, body: bytes) -> bytes | None:
    """``body`` if the inspector may keep it: textual and at most BODY_LIMIT_BYTES."""
    return body if len(body) <= BODY_LIMIT_BYTES and textual(headers) else None


class BodyTee:
    """The first bytes of a body as it streams past, kept while they stay within the limit."""

    __slots__ = ("_chunks", "_size")

    def __init__(self) -> None:
        self._chunks: list[bytes] | None = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        if self._chunks is None:
            return
        self._size += len(chunk)
        if self._size > BODY_LIMIT_BYTES:
            self._chunks = None  # too large to keep: nothing of it is kept
        else:
            self._chunks.append(chunk)

    def body(self) -> bytes | None:
        return None if self._chunks is None else b"".join(self._chunks)


def body_tee(headers: Headers, keep: bool) -> BodyTee | None:
    """A tee for a body with these headers, if bodies are kept and this one is textual."""
    return BodyTee() if keep and textual(headers) else None


Observer = Callable[[Exchange], None]


def record(exchange: Exchange, observers: Sequence[Observer]) -> None:
    """The one place an exchange is recorded: every observer sees it once, finished."""
    exchange.finish()
    for observe in observers:
        observe(exchange)
