"""The record of one exchange: built as the request passes, handed once to every observer.

Facts flow forward into the record (the forwarder sets ``resent``, the relay counts bytes);
observers (access log, metrics) only read a finished record and never reach back into the
request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# nginx's convention for "the client went away before the answer": no status was sent.
CLIENT_CLOSED = 499


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

    @property
    def path(self) -> str:
        return self.raw_target.partition("?")[0]

    def finish(self) -> None:
        self.duration_seconds = time.perf_counter() - self.started


Observer = Callable[[Exchange], None]


def record(exchange: Exchange, observers: Sequence[Observer]) -> None:
    """The one place an exchange is recorded: every observer sees it once, finished."""
    exchange.finish()
    for observe in observers:
        observe(exchange)
