"""The background refresher and the cache's tasks: when it wakes, that it recovers on its own,
and that nothing it starts outlives the application or fails silently."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from proxy.errors import TokenUnavailable
from proxy.grants import Grant
from proxy.tokens import RECENT_TOKENS, Plan, Token, TokenCache, next_refresh
from tests.conftest import MakeStack


class Endpoint:
    """A fetch function that follows a script: a lifetime to grant, or an exception."""

    def __init__(self, *script: float | BaseException) -> None:
        self.script = list(script)
        self.calls = 0

    async def fetch(self) -> Grant:
        self.calls += 1
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        return Grant(f"token-{self.calls}", step)


class CountingSleep:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, seconds: float) -> None:
        self.calls += 1
        await asyncio.sleep(seconds)


async def test_after_the_token_expires_the_refresher_keeps_trying_without_busy_waking() -> None:
    endpoint = Endpoint(1.0, TokenUnavailable("down"))
    sleep = CountingSleep()
    cache = TokenCache(endpoint.fetch, refresh_margin_seconds=0.5, sleep=sleep, jitter=lambda: 0)
    cache.start()
    try:
        await asyncio.sleep(2.5)
    finally:
        await cache.aclose()
    # refresh at 0.5 s, then backoff 0.5 s, 1 s, …: a handful of attempts, each slept towards.
    assert 3 <= endpoint.calls <= 5
    assert sleep.calls <= endpoint.calls + 2


async def test_after_a_failed_start_up_fetch_the_refresher_recovers_on_its_own() -> None:
    endpoint = Endpoint(TokenUnavailable("down"), TokenUnavailable("down"), 3600.0)
    cache = TokenCache(endpoint.fetch, refresh_margin_seconds=300, jitter=lambda: 0)
    cache.start()
    try:
        for _ in range(60):
            if cache.current() is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        await cache.aclose()
    assert cache.current() is not None  # no request asked: the refresher did it
    assert endpoint.calls == 3


async def test_an_unexpected_error_in_a_background_refresh_is_logged_and_backed_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = Endpoint(RuntimeError("a bug"))
    cache = TokenCache(endpoint.fetch, refresh_margin_seconds=300, jitter=lambda: 0)
    cache.start()
    try:
        await asyncio.sleep(0.3)
    finally:
        await cache.aclose()
    assert endpoint.calls == 1  # backed off: the next attempt is 0.5 s away
    (logged,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "unexpectedly" in logged.getMessage()
    assert logged.exc_info is not None
    assert isinstance(cache.last_error, TokenUnavailable)


async def test_a_fetch_in_flight_at_shutdown_is_ended_quietly(
    make_stack: MakeStack, caplog: pytest.LogCaptureFixture
) -> None:
    stack = await make_stack()
    stack.endpoint.failures = ["hang"]
    stack.clock.advance(4000)
    request = asyncio.create_task(stack.client.get("/api/x"))
    for _ in range(100):
        if len(stack.endpoint.requests) == 2:
            break
        await asyncio.sleep(0.01)
    await stack.client.close()
    request.cancel()
    await asyncio.gather(request, return_exceptions=True)
    left = [t for t in asyncio.all_tasks() if t.get_name() in ("token fetch", "token refresher")]
    assert left == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def _token(refresh_at: float, expires_at: float) -> Token:
    return Token("t", refresh_at, expires_at)


@pytest.mark.parametrize(
    ("now", "token", "retry_at", "expected"),
    [
        (0.0, None, float("-inf"), Plan(True, 0.0)),
        (0.0, None, 5.0, Plan(False, 5.0)),
        (10.0, _token(100, 200), float("-inf"), Plan(False, 100)),
        (150.0, _token(100, 200), float("-inf"), Plan(True, 150.0)),
        (150.0, _token(100, 200), 160.0, Plan(False, 160.0)),
        (250.0, _token(100, 200), float("-inf"), Plan(True, 250.0)),
        (250.0, _token(100, 200), 300.0, Plan(False, 300.0)),
        (10.0, _token(5, 5), float("-inf"), Plan(False, float("inf"))),
    ],
    ids=["cold", "cold-backing-off", "fresh", "due", "due-backing-off", "expired",
         "expired-backing-off", "no-lifetime"],
)  # fmt: skip
def test_next_refresh(now: float, token: Token | None, retry_at: float, expected: Plan) -> None:
    assert next_refresh(now, token, retry_at) == expected


def test_clock_is_monotonic_by_default() -> None:
    cache = TokenCache(Endpoint(1.0).fetch, refresh_margin_seconds=1)
    assert cache._clock is time.monotonic


async def test_the_cache_remembers_its_last_few_tokens_expired_ones_included() -> None:
    # Tokens with no lifetime are used once: every get() fetches the next one.
    endpoint = Endpoint(0.0)
    cache = TokenCache(endpoint.fetch, refresh_margin_seconds=0, jitter=lambda: 0)
    assert cache.recent() == []
    try:
        for _ in range(RECENT_TOKENS + 2):
            await cache.get()
    finally:
        await cache.aclose()
    assert cache.current() is None
    last = range(3, RECENT_TOKENS + 3)
    assert cache.recent() == [f"token-{n}" for n in last]
