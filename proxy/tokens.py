"""Bearer tokens: fetched from the token endpoint, cached, refreshed ahead of expiry.

The rules are pure functions (:func:`parse_grant`, :func:`lifetime_of`, :func:`schedule`,
:func:`backoff_seconds`); :class:`TokenClient` does the one HTTP call; :class:`TokenCache` adds
single flight, background refresh and backoff on top, on an injected monotonic clock.

Exceptions::

    TokenError              nothing usable came back from the token endpoint
    ├── TokenRejected       it refused the credentials or answered something unusable (→ 502)
                            (``code`` holds the endpoint's OAuth error code, when it sent one)
    └── TokenUnavailable    it was unreachable, too slow or answered 5xx/429 (→ 503)
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self
from urllib.parse import quote_plus

import aiohttp

if TYPE_CHECKING:
    from proxy.config import Config

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

# A token is treated as expired this long (at most 10 % of its lifetime) before the endpoint
# says it is, so that one sent at the last moment does not expire in transit.
EXPIRY_SKEW_SECONDS = 10.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
MAX_POLL_SECONDS = 1.0


class TokenError(Exception):
    """Base of token failures. ``detail`` is safe to show: it never holds a secret or token."""

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        description: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.description = description
        self.retry_after_seconds = retry_after_seconds

    def again(self, retry_after_seconds: float) -> Self:
        """The same failure, served again from the negative cache."""
        return type(self)(
            self.detail,
            code=self.code,
            description=self.description,
            retry_after_seconds=retry_after_seconds,
        )


class TokenRejected(TokenError):
    """The token endpoint refused the credentials (``invalid_client`` and the like)."""


class TokenUnavailable(TokenError):
    """The token endpoint could not be reached, was too slow, or failed on its side."""


@dataclass(frozen=True)
class Grant:
    """What the token endpoint issued."""

    access_token: str = field(repr=False)
    lifetime_seconds: float


@dataclass(frozen=True, eq=False)
class Token:
    """A cached token. Compared by identity: "is this still the token that was rejected?"."""

    value: str = field(repr=False)
    refresh_at: float
    expires_at: float


def lifetime_of(expires_in: object, default_seconds: float) -> float:
    """Seconds a token lives, from an ``expires_in`` that may be a number, a string or absent."""
    if isinstance(expires_in, bool) or expires_in is None:
        return default_seconds
    if isinstance(expires_in, int | float):
        seconds = float(expires_in)
    elif isinstance(expires_in, str):
        try:
            seconds = float(expires_in.strip())
        except ValueError:
            return default_seconds
    else:
        return default_seconds
    return seconds if math.isfinite(seconds) else default_seconds


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


def _json_object(body: bytes) -> dict[str, object]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def parse_grant(status: int, body: bytes, default_lifetime_seconds: float) -> Grant:
    """Read a token endpoint's answer, or raise the :class:`TokenError` it amounts to."""
    data = _json_object(body)
    if status >= 500 or status == 429:
        raise TokenUnavailable(f"the token endpoint answered {status}")
    if status != 200:
        error, description = data.get("error"), data.get("error_description")
        raise TokenRejected(
            f"the token endpoint answered {status}",
            code=error if isinstance(error, str) and error else None,
            description=description if isinstance(description, str) else None,
        )
    access_token, token_type = data.get("access_token"), data.get("token_type", "Bearer")
    if not isinstance(access_token, str) or not access_token:
        raise TokenRejected("the token endpoint answered 200 without an access_token")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenRejected(f"the token endpoint issued a {token_type!r} token, not Bearer")
    return Grant(access_token, lifetime_of(data.get("expires_in"), default_lifetime_seconds))


class TokenClient:
    """Asks the token endpoint for one token, exactly as the vendor documents."""

    def __init__(self, session: aiohttp.ClientSession, config: Config) -> None:
        self._session = session
        self._config = config

    def _read_secret(self) -> str:
        # Re-read on every request: generating a new secret disables the old one at once, and a
        # rotated secret file must work without a restart.
        path = self._config.client_secret_file
        if path is None:
            return self._config.client_secret or ""
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TokenRejected(
                f"cannot read the client secret file {path}: {exc.strerror}"
            ) from exc

    async def fetch(self) -> Grant:
        config, secret = self._config, self._read_secret()
        form = {"grant_type": "client_credentials", "scope": config.scope}
        headers = {"Accept": "application/json"}
        if config.client_auth == "basic":
            # RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding.
            basic = aiohttp.encode_basic_auth(quote_plus(config.client_id), quote_plus(secret))
            headers["Authorization"] = basic
        else:
            form |= {"client_id": config.client_id, "client_secret": secret}
        try:
            async with self._session.post(
                config.token_url,
                data=form,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=config.token_timeout_seconds),
            ) as response:
                body = await response.content.read(MAX_TOKEN_RESPONSE_BYTES)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = "did not answer in time" if isinstance(exc, TimeoutError) else "is unreachable"
            raise TokenUnavailable(f"the token endpoint {reason}") from exc
        try:
            return parse_grant(status, body, config.default_token_lifetime_seconds)
        except TokenError as exc:
            if exc.description and secret:
                exc.description = exc.description.replace(secret, "[redacted]")
            raise


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
