"""The cached token: fetched once, shared by every request, refreshed ahead of expiry.

:class:`TokenCache` adds single flight, background refresh and backoff with a negative cache
on top of a fetch function (in production :meth:`proxy.grants.TokenClient.fetch`), on an
injected monotonic clock. When to refresh and how long to back off are pure functions
(:func:`schedule`, :func:`backoff_seconds`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from proxy.grants import Grant, TokenError, TokenRejected

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

# A token is treated as expired this long (at most 10 % of its lifetime) before the endpoint
# says it is, so that one sent at the last moment does not expire in transit.
EXPIRY_SKEW_SECONDS = 10.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
MAX_POLL_SECONDS = 1.0


@dataclass(frozen=True, eq=False)
class Token:
    """A cached token. Compared by identity: "is this still the token that was rejected?"."""

    value: str = field(repr=False)
    refresh_at: float
    expires_at: float


def schedule(received_at: float, lifetime: float, margin: float) -> tuple[float, float]:
    """``(refresh_at, expires_at)`` for a token of ``lifetime`` seconds received at a time.

    A lifetime of zero or less gives a token that is never valid in the cache: it serves only
    the requests that waited for it.
    """
    if lifetime <= 0:
        return received_at, received_at
    expires_at = received_at + lifetime - min(EXPIRY_SKEW_SECONDS, lifetime * 0.1)
    refresh_at = received_at + max(lifetime - margin, lifetime / 2)
    return min(refresh_at, expires_at), expires_at


def backoff_seconds(failures: int, jitter: float) -> float:
    """Wait before the next attempt after ``failures`` failures in a row (``jitter`` in [0, 1]).

    Exponential, capped, with "equal jitter": between half and all of the step, so that many
    proxies restarted together do not retry in lockstep.
    """
    step = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** max(failures - 1, 0))
    return step * (0.5 + jitter / 2)


Observer = Callable[[str], None]


def _ignore(outcome: str) -> None:
    """The default observer."""


class TokenCache:
    """One cached token, shared by every request, with single-flight fetching.

    ``fetch`` asks the endpoint for a grant. ``observe`` is told each fetch's outcome
    (``success``, ``rejected``, ``unavailable``), for metrics.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Grant]],
        *,
        refresh_margin_seconds: float,
        clock: Clock = time.monotonic,
        observe: Observer = _ignore,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._fetch_grant = fetch
        self._margin = refresh_margin_seconds
        self._clock = clock
        self._observe = observe
        self._jitter = jitter
        self._token: Token | None = None
        self._inflight: asyncio.Task[Token] | None = None
        self._failures = 0
        self._retry_at = -math.inf
        self._last_error: TokenError | None = None

    def current(self) -> Token | None:
        """The cached token if it has not expired, else ``None``."""
        token = self._token
        return token if token is not None and self._clock() < token.expires_at else None

    def seconds_until_expiry(self) -> float:
        token = self.current()
        return token.expires_at - self._clock() if token else 0.0

    async def get(self) -> Token:
        """A token to send now: the cached one, or the outcome of the one fetch in flight."""
        token = self.current()
        if token is not None:
            if self._clock() >= token.refresh_at:
                self._refresh_in_background()
            return token
        self._raise_if_backing_off()
        return await self._join_fetch()

    def invalidate(self, rejected: Token) -> None:
        """Drop ``rejected`` after a 401, but only if it is still the cached token.

        When a hundred requests come back 401 on one token, the first drops it and the next
        :meth:`get` starts the one fetch; the rest find that fetch in flight or its result,
        so there is one refresh, not a hundred.
        """
        if self._token is rejected:
            self._token = None

    async def maintain(self) -> None:
        """Fetch a token at start-up and keep it fresh, so steady-state requests never wait."""
        while True:
            token, now = self._token, self._clock()
            due = token is None and self._last_error is None and self._failures == 0
            if token is not None and token.refresh_at <= now < token.expires_at:
                due = True
            if due and now >= self._retry_at and self._inflight is None:
                self._refresh_in_background()
            delay = token.refresh_at - now if token else MAX_POLL_SECONDS
            await asyncio.sleep(min(max(delay, 0.01), MAX_POLL_SECONDS))

    def _raise_if_backing_off(self) -> None:
        # The negative cache: during an outage a burst of requests shares the last failure
        # instead of each hitting the token endpoint.
        remaining = self._retry_at - self._clock()
        if self._last_error is not None and remaining > 0 and self._inflight is None:
            raise self._last_error.again(retry_after_seconds=remaining)

    def _refresh_in_background(self) -> None:
        if self._inflight is None and self._clock() >= self._retry_at:
            self._start_fetch()

    def _start_fetch(self) -> asyncio.Task[Token]:
        task = asyncio.create_task(self._fetch())
        # Retrieve the outcome even when no request waits for it (a background refresh), so
        # asyncio does not log "exception was never retrieved".
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._inflight = task
        return task

    async def _join_fetch(self) -> Token:
        task = self._inflight or self._start_fetch()
        # shield: a client that disconnects must not cancel the fetch other requests share.
        return await asyncio.shield(task)

    async def _fetch(self) -> Token:
        started = self._clock()
        try:
            grant = await self._fetch_grant()
        except TokenError as exc:
            self._record_failure(exc)
            raise
        finally:
            self._inflight = None
        refresh_at, expires_at = schedule(started, grant.lifetime_seconds, self._margin)
        token = Token(grant.access_token, refresh_at, expires_at)
        self._token, self._failures, self._last_error = token, 0, None
        self._retry_at = -math.inf
        self._observe("success")
        logger.info("token fetched: lifetime %.0f s", grant.lifetime_seconds)
        return token

    def _record_failure(self, exc: TokenError) -> None:
        self._failures += 1
        wait = backoff_seconds(self._failures, self._jitter())
        self._retry_at = self._clock() + wait
        self._last_error = exc
        exc.retry_after_seconds = wait
        outcome = "rejected" if isinstance(exc, TokenRejected) else "unavailable"
        self._observe(outcome)
        logger.warning(
            "token fetch failed (%s): %s%s; next attempt in %.1f s",
            outcome,
            exc.detail,
            f" [{exc.code}]" if exc.code else "",
            wait,
        )
