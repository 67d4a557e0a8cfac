"""Limits on what clients can make the proxy hold: pure rules and small accounting objects,
each driven by a table in the tests, no sockets.

- :class:`HeadMeter`: the bytes of one request head (request line and headers) as they arrive,
  so that an unfinished head is refused once it is too large, not when it is complete.
- :class:`ReplayBudget`: the memory that the bodies kept for a resend may take together.
- :class:`InFlight`: the number of requests being forwarded at once.
- :func:`body_wait`: how long the next read of a request body may take.
- :func:`streaming_share`: how many pooled upstream connections streamed bodies may hold.
- :func:`open_files_target`: the open-files limit to raise the soft limit to, which
  :func:`raise_open_files_limit` applies at start-up (the one function here with effects).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import resource
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Where the hard limit is "unlimited", a soft limit is still needed: this is Linux's default
# ceiling (fs.nr_open).
OPEN_FILES_CEILING = 1048576


@dataclass
class HeadMeter:
    """Counts the bytes of the request head (request line and headers) being received.

    :meth:`room` is how many more bytes the head may take; a head that is not complete when
    none is left is over the limit. :meth:`completed` starts again for the next request.
    """

    max_bytes: int
    size: int = 0

    def room(self) -> int:
        return max(self.max_bytes - self.size, 0)

    def received(self, size: int) -> None:
        self.size += size

    def completed(self) -> None:
        self.size = 0


class ReplayBudget:
    """Bytes that request bodies kept for a resend may hold together, across all requests.

    A body is kept only if its whole announced length fits in what is left; otherwise it is
    streamed and not resent. Every :meth:`grant` that returned ``True`` is paired with one
    :meth:`release` of the same size.
    """

    def __init__(self, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.held_bytes = 0

    def grant(self, size: int) -> bool:
        if self.held_bytes + size > self.total_bytes:
            return False
        self.held_bytes += size
        return True

    def release(self, size: int) -> None:
        assert 0 <= size <= self.held_bytes, (size, self.held_bytes)
        self.held_bytes -= size


class InFlight:
    """Requests being forwarded, up to a cap: beyond it a request is refused at once rather
    than queued, so that a burst cannot build an unbounded backlog of waiting requests."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.count = 0
        self._idle: asyncio.Event | None = None  # made only while shutdown waits
        # Set once the shutdown's grace is over: what is cut then is cut by the shutdown.
        self.stopping = False

    def admit(self) -> bool:
        if self.count >= self.cap:
            return False
        self.count += 1
        return True

    def leave(self) -> None:
        assert self.count > 0
        self.count -= 1
        if not self.count and self._idle is not None:
            self._idle.set()

    async def drained(self) -> None:
        """Return once no request is being forwarded (for shutdown's drain)."""
        while self.count:
            self._idle = asyncio.Event()
            await self._idle.wait()
        self._idle = None


class BodyWait(enum.Enum):
    IDLE = "idle"
    TOTAL = "total"


def body_wait(now: float, deadline: float, idle_seconds: float) -> tuple[float, BodyWait]:
    """How long the next read of a request body may wait, and which limit ends it: the idle
    timeout, unless the deadline for the whole body comes first."""
    left = deadline - now
    if left < idle_seconds:
        return max(left, 0.0), BodyWait.TOTAL
    return idle_seconds, BodyWait.IDLE


def streaming_share(pool_size: int) -> int:
    """Pooled upstream connections that requests streaming their body may hold at once.

    A streamed body keeps its upstream connection for as long as the client takes to send it,
    so slow clients could otherwise hold the whole pool; half of it stays for the requests
    whose bodies are in hand (or that have none).
    """
    return max(1, pool_size // 2)


def open_files_target(soft: int, hard: int, unlimited: int) -> int:
    """The soft open-files limit to set: the hard limit (what nginx's worker_rlimit_nofile is
    set for, and what Go's runtime does at start-up), never lower than the soft limit already
    is. ``unlimited`` is the platform's RLIM_INFINITY."""
    if hard == unlimited:
        return soft if soft == unlimited else max(soft, OPEN_FILES_CEILING)
    return max(soft, hard)


def raise_open_files_limit() -> int:
    """Raise this process's soft open-files limit as far as the hard limit allows, so that
    thousands of client connections do not fail with EMFILE; log the limit, and return it.

    Every client and upstream connection is a file descriptor, and the usual soft limit
    (1024) is far below what the hard limit allows.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = open_files_target(soft, hard, resource.RLIM_INFINITY)
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            logger.warning("open files: limit %d, could not raise it to %d: %s", soft, target, exc)
            return soft
    logger.info("open files: limit %d (soft limit was %d, hard limit %s)", target, soft,
                "unlimited" if hard == resource.RLIM_INFINITY else hard)  # fmt: skip
    return target
