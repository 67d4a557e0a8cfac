"""401s are no lever: how often a 401 may cost a token request, and what happens to the shared
token when the refresh it starts fails. Every test counts token requests."""

from __future__ import annotations

import pytest
from aiohttp import web

from proxy.policy import After401, after_401, may_retry_stale
from tests.conftest import MakeStack, Stack
from tests.fakes import FakeUpstream


def _always_401_on(path: str, upstream: FakeUpstream) -> None:
    async def respond(request: web.Request) -> web.Response:
        if request.path == path:
            await request.read()
            return web.json_response({"status": 401}, status=401)
        return web.json_response({"ok": True})

    upstream.responder = respond


async def _status(stack: Stack, path: str, data: bytes | None = None) -> int:
    response = await stack.client.post(path, data=data) if data else await stack.client.get(path)
    await response.read()
    return response.status


async def test_a_path_that_always_answers_401_costs_one_refresh_not_one_per_request(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    _always_401_on("/always-401", upstream)
    stack = await make_stack()
    statuses = [await _status(stack, "/always-401") for _ in range(100)]
    assert statuses == [401] * 100
    assert len(stack.endpoint.requests) == 2  # the first token, and one refresh


async def test_a_streamed_body_answered_401_costs_one_refresh_not_one_per_request(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    _always_401_on("/upload", upstream)
    stack = await make_stack(replay_limit_bytes="10")
    statuses = [await _status(stack, "/upload", b"z" * 100) for _ in range(30)]
    assert statuses == [401] * 30
    assert len(stack.endpoint.requests) == 2


async def test_401_refreshes_are_rate_limited_even_for_tokens_that_worked(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    _always_401_on("/always-401", upstream)
    stack = await make_stack()
    assert await _status(stack, "/always-401") == 401  # refresh 1: token-2, unproven
    assert await _status(stack, "/ok") == 200  # token-2 works: proven
    assert await _status(stack, "/always-401") == 401  # within the interval: no refresh
    assert len(stack.endpoint.requests) == 2
    stack.clock.advance(6)  # past the resend interval (5 s)
    assert await _status(stack, "/always-401") == 401
    assert len(stack.endpoint.requests) == 3


@pytest.mark.parametrize("body", [None, b"z" * 100], ids=["replayable", "streamed"])
async def test_a_401_during_a_token_outage_keeps_the_still_valid_token(
    make_stack: MakeStack, upstream: FakeUpstream, body: bytes | None
) -> None:
    _always_401_on("/once-401", upstream)
    stack = await make_stack(replay_limit_bytes="10")
    assert await _status(stack, "/ok") == 200
    stack.endpoint.failures = [(500, {})] * 10
    assert await _status(stack, "/once-401", body) == 401
    statuses = [await _status(stack, "/ok") for _ in range(20)]
    assert statuses == [200] * 20
    assert set(stack.upstream.tokens_seen) == {"token-1"}


@pytest.mark.parametrize(
    ("replaced", "in_flight", "unproven", "since", "expected"),
    [
        (True, False, False, 0.0, After401.USE_CURRENT),
        (True, True, True, 0.0, After401.USE_CURRENT),
        (False, True, False, 0.0, After401.JOIN_FETCH),
        (False, True, True, 100.0, After401.JOIN_FETCH),
        (False, False, True, 100.0, After401.GIVE_UP),
        (False, False, False, 4.9, After401.GIVE_UP),
        (False, False, False, 5.0, After401.REFRESH),
        (False, False, False, float("inf"), After401.REFRESH),
    ],
)
def test_after_401(
    replaced: bool, in_flight: bool, unproven: bool, since: float, expected: After401
) -> None:
    decision = after_401(
        replaced=replaced,
        fetch_in_flight=in_flight,
        unproven=unproven,
        seconds_since_last_refresh=since,
        interval_seconds=5.0,
    )
    assert decision is expected


@pytest.mark.parametrize(
    ("method", "replayable", "expected"),
    [
        ("GET", True, True),
        ("HEAD", True, True),
        ("PUT", True, True),
        ("DELETE", True, True),
        ("OPTIONS", True, True),
        ("PUT", False, False),
        ("POST", True, False),
        ("PATCH", True, False),
        ("PROPFIND", True, False),
    ],
)
def test_may_retry_stale(method: str, replayable: bool, expected: bool) -> None:
    assert may_retry_stale(method, replayable) is expected
