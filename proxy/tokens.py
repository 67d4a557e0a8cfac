"""The cached token: fetched once, shared by every request, refreshed ahead of expiry.

:class:`TokenCache` adds single flight, background refresh, backoff with a negative cache and
the 401 rule (:func:`proxy.policy.after_401`) on top of a fetch function (in production
:meth:`proxy.grants.TokenClient.fetch`), on an injected monotonic clock. When to refresh and
how long to back off are pure functions (:func:`schedule`, :func:`backoff_seconds`,
:func:`next_refresh`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from proxy.clock import Clock, Sleep
from proxy.errors import TokenError, TokenUnavailable
from proxy.grants import Grant
from proxy.policy import RESEND_REFRESH_INTERVAL_SECONDS, After401, after_401

logger = logging.getLogger(__name__)

# A token is treated as expired this long (at most 10 % of its lifetime) before the endpoint
# says it is, so that one sent at the last moment does not expire in transit.
EXPIRY_SKEW_SECONDS = 10.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
# How many tokens a cache remembers after it has replaced them, for the inspector's scrubber:
# a token stays valid upstream past the refresh that replaced it, and exchanges recorded
# before that refresh may echo it in a body.
RECENT_TOKENS = 4


@dataclass(frozen=True, eq=False)
class Token:
    """A cached token. Compared by identity: "is this still the token that was rejected?"."""

    value: str = field(repr=False)
    refresh_at: float
    expires_at: float

    @property
    def cacheable(self) -> bool:
        """False for a token issued with no lifetime: it serves only the requests that waited."""
        return self.refresh_at < self.expires_at


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


@dataclass(frozen=True)
class Plan:
    """The background refresher's next step: fetch now, or sleep until ``wake_at``."""

    fetch: bool
    wake_at: float


def next_refresh(now: float, token: Token | None, retry_at: float) -> Plan:
    """What the refresher does next, and when.

    A token is refreshed from its ``refresh_at`` on, and a missing or expired one at once, but
    never before a backoff ends. A token issued with no lifetime is not refreshed in the
    background (that would fetch in a loop): the next request asks for one.
    """
    if token is not None and not token.cacheable:
        return Plan(fetch=False, wake_at=math.inf)
    due_at = -math.inf if token is None else token.refresh_at
    start_at = max(due_at, retry_at)
    return Plan(fetch=True, wake_at=now) if start_at <= now else Plan(False, start_at)


Observer = Callable[[str], None]


def _ignore(outcome: str) -> None:
    """The default observer."""


class TokenCache:
    """One cached token, shared by every request, with single-flight fetching.

    ``fetch`` asks the endpoint for a grant; ``name``, when given, starts its log lines (an
    organization's, with several). ``observe`` is told each fetch's outcome
    (``success`` or a :class:`TokenError`'s ``outcome``), for metrics. :meth:`start` begins
    the background refresher; :meth:`aclose` ends it and any fetch in flight.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Grant]],
        *,
        refresh_margin_seconds: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        observe: Observer = _ignore,
        jitter: Callable[[], float] = random.random,
        resend_interval_seconds: float = RESEND_REFRESH_INTERVAL_SECONDS,
        name: str | None = None,
    ) -> None:
        # Whose token, in log lines: an organization's name when there are several.
        self._whose = f"{name}: " if name else ""
        self._fetch_grant = fetch
        self._margin = refresh_margin_seconds
        self._clock, self._sleep = clock, sleep
        self._observe = observe
        self._jitter = jitter
        self._resend_interval = resend_interval_seconds
        self._token: Token | None = None
        self._recent: deque[str] = deque(maxlen=RECENT_TOKENS)
        self._unproven: Token | None = None  # fetched after a 401 and not accepted since
        self._last_401_refresh = -math.inf
        self._inflight: asyncio.Task[Token] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._failures = 0
        self._retry_at = -math.inf
        self._last_error: TokenError | None = None
        self._last_fetch: tuple[float, str] | None = None  # (when, outcome)

    def current(self) -> Token | None:
        """The cached token if it has not expired, else ``None``."""
        token = self._token
        return token if token is not None and self._clock() < token.expires_at else None

    def recent(self) -> list[str]:
        """The values of the last :data:`RECENT_TOKENS` tokens, the current one last, expired
        or replaced ones included: what a scrubber must know, never what a request may use."""
        return list(self._recent)

    def seconds_until_expiry(self) -> float:
        token = self.current()
        return token.expires_at - self._clock() if token else 0.0

    @property
    def last_error(self) -> TokenError | None:
        """The failure of the last fetch, or ``None`` if it succeeded."""
        return self._last_error

    @property
    def last_fetch(self) -> tuple[float, str] | None:
        """``(seconds ago, outcome)`` of the last fetch that ended, or ``None`` before any."""
        if self._last_fetch is None:
            return None
        at, outcome = self._last_fetch
        return self._clock() - at, outcome

    async def get(self) -> Token:
        """A token to send now: the cached one, or the outcome of the one fetch in flight."""
        token = self.current()
        if token is not None:
            return token
        self._raise_if_backing_off()
        return await self._join_fetch()

    def accepted(self, token: Token) -> None:
        """The upstream took ``token``: a later 401 on it is news, not the same failure."""
        if self._unproven is token:
            self._unproven = None

    async def replacement(self, rejected: Token) -> Token | None:
        """The token to resend with after the upstream answered 401 to ``rejected``, or
        ``None`` to pass the 401 on.

        The rejected token stays cached until a new one has arrived: if the refresh fails,
        requests go on using it until it really expires, rather than all failing at once.
        """
        current = self.current()
        decision = after_401(
            replaced=current is not None and current is not rejected,
            fetch_in_flight=self._inflight is not None,
            unproven=rejected is self._unproven,
            seconds_since_last_refresh=self._clock() - self._last_401_refresh,
            interval_seconds=self._resend_interval,
        )
        if decision is After401.USE_CURRENT:
            return current
        if decision is After401.GIVE_UP:
            why = (
                "the token fetched after the last 401 was rejected too"
                if rejected is self._unproven
                else "a 401 started a refresh less than the resend interval ago"
            )
            logger.info("%s401 from the upstream passed on: %s", self._whose, why)
            return None
        if decision is After401.REFRESH:
            self._last_401_refresh = self._clock()
            self._start_fetch(after_401=True)
        try:
            fresh = await self._join_fetch()
        except TokenError:
            return None
        return fresh if fresh is not rejected else None

    def end_backoff(self) -> None:
        """Try the token endpoint again at once (after a fixed secret was put in place)."""
        self._failures, self._retry_at = 0, -math.inf
        self._changed.set()

    def start(self) -> None:
        """Fetch a token now and keep it fresh, so that steady-state requests never wait."""
        self._refresher = asyncio.create_task(self._maintain(), name="token refresher")

    async def aclose(self) -> None:
        """Stop the refresher and any fetch in flight, and wait until both have ended."""
        tasks = [task for task in (self._refresher, self._inflight) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _maintain(self) -> None:
        while True:
            while self._inflight is not None:  # a request may start another meanwhile
                await asyncio.wait([self._inflight])
            plan = next_refresh(self._clock(), self._token, self._retry_at)
            if plan.fetch:
                self._start_fetch()
                continue
            await self._wait_until(plan.wake_at)

    async def _wait_until(self, wake_at: float) -> None:
        # Until the due time, or until something changes the plan (a fetch a request started,
        # a reload ending the backoff): never a busy loop.
        self._changed.clear()
        changed = asyncio.ensure_future(self._changed.wait())
        waits: list[asyncio.Future[object]] = [changed]  # type: ignore[list-item]
        if math.isfinite(wake_at):
            waits.append(asyncio.ensure_future(self._sleep(wake_at - self._clock())))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    def _raise_if_backing_off(self) -> None:
        # The negative cache: during an outage a burst of requests shares the last failure
        # instead of each hitting the token endpoint.
        remaining = self._retry_at - self._clock()
        if self._last_error is not None and remaining > 0 and self._inflight is None:
            raise self._last_error.again(retry_after_seconds=remaining)

    def _start_fetch(self, *, after_401: bool = False) -> asyncio.Task[Token]:
        task = asyncio.create_task(self._fetch(after_401), name="token fetch")
        # The outcome is logged and recorded by _fetch; retrieving it here keeps asyncio from
        # reporting "exception was never retrieved" for a refresh no request waited for.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._inflight = task
        return task

    async def _join_fetch(self) -> Token:
        task = self._inflight or self._start_fetch()
        # shield: a client that disconnects must not cancel the fetch other requests share.
        return await asyncio.shield(task)

    async def _fetch(self, after_401: bool) -> Token:
        started = self._clock()
        try:
            grant = await self._fetch_grant()
        except TokenError as exc:
            self._record_failure(exc)
            raise
        except Exception as exc:
            # A bug, not an outage: say so loudly, and still back off as for any failure.
            logger.exception("%stoken fetch failed unexpectedly", self._whose)
            failure = TokenUnavailable("the token fetch failed unexpectedly")
            self._record_failure(failure)
            raise failure from exc
        finally:
            self._inflight = None
            self._changed.set()
        refresh_at, expires_at = schedule(started, grant.lifetime_seconds, self._margin)
        token = Token(grant.access_token, refresh_at, expires_at)
        self._token, self._failures, self._last_error = token, 0, None
        if grant.access_token not in self._recent:
            self._recent.append(grant.access_token)
        self._unproven = token if after_401 else None
        self._retry_at = -math.inf
        self._last_fetch = (self._clock(), "success")
        self._observe("success")
        logger.info("%stoken fetched: lifetime %.0f s", self._whose, grant.lifetime_seconds)
        return token

    def _record_failure(self, exc: TokenError) -> None:
        self._failures += 1
        wait = backoff_seconds(self._failures, self._jitter())
        self._retry_at = self._clock() + wait
        self._last_error = exc
        exc.retry_after_seconds = wait
        self._last_fetch = (self._clock(), exc.outcome)
        self._observe(exc.outcome)
        said = f"; the endpoint said: {exc.description}" if exc.description else ""
        logger.warning(
            "%stoken fetch failed (%s): %s%s; next attempt in %.1f s",
            self._whose,
            exc.outcome,
            exc.detail,
            said,
            wait,
        )
