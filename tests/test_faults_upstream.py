"""Faults of the upstream, one table. For each: what every client is told (the README's error
table, or the upstream's own answer passed on); how many times each request reached the
upstream, so that none is lost silently or sent twice unasked; no token request is spent on
it; nothing leaks; and the next requests succeed once the fault clears, with no restart."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from proxy.problems import TYPE_BASE
from tests.conftest import MakeStack, Stack
from tests.fakes import upstream_app
from tests.faults import (
    Answer,
    StartServer,
    bring_back,
    forget,
    take_down,
    traffic,
    until_token_fetches,
)
from tests.leaks import assert_nothing_leaked, measure, tracing

REQUESTS, CONCURRENCY = 100, 20
READ_TIMEOUT_SECONDS = "0.3"
BODY = b'{"displayName": "invoice"}'
MAY_HAVE_BEEN_PROCESSED = "may have been processed"


@dataclass(frozen=True)
class Case:
    """A fault (a name from tests.fakes.UPSTREAM_FAULTS, or "down": the server closed), the
    method of the requests sent meanwhile, and what each of them must get."""

    fault: str
    method: str
    status: int
    slug: str | None  # the proxy's problem type; None for the upstream's own answer
    says: str = ""  # words in the problem's detail
    reached: int = 1  # times each request reached the upstream
    cut: bool = False  # the answer started, then the connection closed


CASES = [
    Case("down", "GET", 502, "upstream-unreachable", "connection refused", reached=0),
    Case("down", "POST", 502, "upstream-unreachable", "connection refused", reached=0),
    Case("slow", "GET", 504, "upstream-timeout", "sent nothing for 0.3 s"),
    Case("slow", "POST", 504, "upstream-timeout", MAY_HAVE_BEEN_PROCESSED),
    Case("reset", "GET", 200, None, cut=True),
    Case("reset", "POST", 200, None, cut=True),
    Case("5xx", "GET", 503, None),
    Case("5xx", "POST", 503, None),
]


class Switch:
    def __init__(self, fault: str, stack: Stack, start: StartServer) -> None:
        self.fault, self.stack, self.start = fault, stack, start
        self.port = 0

    async def on(self) -> None:
        if self.fault == "down":
            self.port = await take_down(self.stack.upstream_server)
        else:
            self.stack.upstream.fault = self.fault

    async def off(self) -> None:
        if self.fault == "down":
            app = upstream_app(self.stack.upstream)
            self.stack.upstream_server = await bring_back(self.start, app, self.port)
        else:
            self.stack.upstream.fault = None


def _assert_told(case: Case, answer: Answer) -> None:
    assert (answer.status, answer.cut) == (case.status, case.cut), answer
    if case.slug is None:
        return
    problem = answer.problem
    assert problem["type"] == TYPE_BASE + case.slug
    assert case.says in str(problem["detail"])
    if case.method == "GET":
        assert MAY_HAVE_BEEN_PROCESSED not in str(problem["detail"])


async def _stack(make_stack: MakeStack) -> Stack:
    stack = await make_stack(upstream_read_timeout_seconds=READ_TIMEOUT_SECONDS)
    stack.upstream.slow_seconds = 1.0
    # A token, and the pool as full as the traffic below will make it.
    answers = await traffic(stack, REQUESTS, concurrency=CONCURRENCY)
    assert {answer.status for answer in answers} == {200}
    return stack


@pytest.mark.parametrize("case", CASES, ids=[f"{case.fault}-{case.method}" for case in CASES])
async def test_an_upstream_fault_is_told_and_recovered_from(
    make_stack: MakeStack, aiohttp_server: StartServer, case: Case
) -> None:
    stack = await _stack(make_stack)
    switch = Switch(case.fault, stack, aiohttp_server)
    data = BODY if case.method == "POST" else None
    with tracing():
        before = measure()
        await switch.on()
        sent = len(stack.upstream.received)
        answers = await traffic(
            stack, REQUESTS, concurrency=CONCURRENCY, method=case.method, data=data
        )
        for answer in answers:
            _assert_told(case, answer)
        assert len(stack.upstream.received) - sent == REQUESTS * case.reached
        await switch.off()
        sent = len(stack.upstream.received)
        recovered = await traffic(stack, 20, method=case.method, data=data)
        assert {answer.status for answer in recovered} == {200}
        assert len(stack.upstream.received) - sent == 20
        await until_token_fetches(stack, 1)  # an upstream fault costs no token
        forget(stack)
        await assert_nothing_leaked(before)


async def test_a_post_on_a_connection_the_upstream_closed_reaches_it_once_or_says_so(
    make_stack: MakeStack,
) -> None:
    stack = await _stack(make_stack)
    with tracing():
        before = measure()
        stack.upstream.fault = "stale"
        sent = len(stack.upstream.received)
        answers = await traffic(stack, REQUESTS, concurrency=CONCURRENCY, method="POST", data=BODY)
        # Each POST reached the upstream exactly once, and was never sent again; where it
        # went unanswered, the client is told that it may have been processed.
        assert len(stack.upstream.received) - sent == REQUESTS
        refused = [answer for answer in answers if answer.status != 200]
        assert refused, "no request met a connection the upstream had closed"
        for answer in refused:
            assert answer.status == 502
            assert MAY_HAVE_BEEN_PROCESSED in str(answer.problem["detail"])
        stack.upstream.fault = None
        assert {a.status for a in await traffic(stack, 20, method="POST", data=BODY)} == {200}
        await until_token_fetches(stack, 1)
        forget(stack)
        await assert_nothing_leaked(before)


async def test_a_get_on_a_connection_the_upstream_closed_is_answered_from_a_new_one(
    make_stack: MakeStack,
) -> None:
    stack = await _stack(make_stack)
    with tracing():
        before = measure()
        stack.upstream.fault = "stale"
        sent = len(stack.upstream.received)
        answers = await traffic(stack, REQUESTS, concurrency=CONCURRENCY)
        assert {answer.status for answer in answers} == {200}
        # Some met a closed connection and were sent again: a GET may be (RFC 9110 §9.2.2).
        assert REQUESTS < len(stack.upstream.received) - sent <= 3 * REQUESTS
        stack.upstream.fault = None
        await until_token_fetches(stack, 1)
        forget(stack)
        await assert_nothing_leaked(before)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_keep_alive_connections_the_upstream_closes_while_idle_cost_nothing(
    make_stack: MakeStack, method: str
) -> None:
    stack = await _stack(make_stack)
    data = BODY if method == "POST" else None
    with tracing():
        before = measure()
        stack.upstream.fault = "idle-close"
        sent = len(stack.upstream.received)
        for _ in range(20):
            answer = (await traffic(stack, 1, method=method, data=data))[0]
            assert answer.status == 200, answer
            await asyncio.sleep(0.05)  # longer than the upstream keeps an idle connection
        assert len(stack.upstream.received) - sent == 20
        stack.upstream.fault = None
        await until_token_fetches(stack, 1)
        forget(stack)
        await assert_nothing_leaked(before)
