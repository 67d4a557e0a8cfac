"""Faults of the token endpoint, one table. For each: the client is told what the README's
error table says; the token endpoint sees exactly the requests the backoff allows, however many
clients ask; nothing leaks; and the proxy recovers on its own, without a restart, once the
fault clears."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from proxy.problems import TYPE_BASE
from tests.conftest import MakeStack, Stack
from tests.fakes import token_app
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

FIRST_SECRET, ROTATED_SECRET = "first-secret", "rotated-secret"
BURST = 200  # requests while the endpoint is failing: one token request at most, not 200
TOKEN_TIMEOUT_SECONDS = "0.3"


@dataclass(frozen=True)
class Case:
    """A fault (a name from tests.fakes.TOKEN_FAULTS, or "down": the server closed) and what
    every client asking meanwhile must be told."""

    fault: str
    status: int
    slug: str
    says: str  # words in the problem's detail
    code: str | None = None


CASES = [
    Case("500", 503, "token-unavailable", "answered 500"),
    Case("html", 503, "token-unavailable", "not JSON"),
    Case("garbage", 503, "token-unavailable", "not JSON"),
    Case("truncated", 503, "token-unavailable", "not JSON"),
    Case("cut", 503, "token-unavailable", "cut its answer short"),
    Case("missing-fields", 503, "token-unavailable", "without an access_token"),
    Case("slow", 503, "token-unavailable", "did not answer within"),
    Case("closed", 503, "token-unavailable", "closed the connection without answering"),
    Case("down", 503, "token-unavailable", "connection refused"),
    Case("invalid_client", 502, "token-rejected", "rejected or has expired", "invalid_client"),
]


class Switch:
    """Turns one case's fault on and off. ``invalid_client`` is the organization's secret
    being rotated at the vendor (the endpoint accepts only the new one) and cleared by
    writing the new secret into the proxy's secret file."""

    def __init__(self, case: Case, stack: Stack, start: StartServer, secret_file: Path) -> None:
        self.fault, self.stack, self.start, self.secret_file = case.fault, stack, start, secret_file
        self.port = 0

    async def on(self) -> None:
        if self.fault == "down":
            self.port = await take_down(self.stack.token_server)
        elif self.fault == "invalid_client":
            self.stack.endpoint.accepted_secret = ROTATED_SECRET
        else:
            self.stack.endpoint.fault = self.fault

    async def off(self) -> None:
        if self.fault == "down":
            app = token_app(self.stack.endpoint)
            self.stack.token_server = await bring_back(self.start, app, self.port)
        elif self.fault == "invalid_client":
            self.secret_file.write_text(ROTATED_SECRET + "\n")
        else:
            self.stack.endpoint.fault = None


def _assert_told(case: Case, answers: list[Answer]) -> None:
    for answer in answers:
        assert answer.status == case.status, answer
        problem = answer.problem
        assert problem["type"] == TYPE_BASE + case.slug
        assert case.says in str(problem["detail"])
        assert problem.get("code") == case.code
        assert FIRST_SECRET.encode() not in answer.body
        if case.status == 503:
            assert 1 <= int(answer.headers["Retry-After"]) <= 60


def _statuses(answers: list[Answer]) -> set[int]:
    return {answer.status for answer in answers}


@pytest.mark.parametrize("case", CASES, ids=[case.fault for case in CASES])
async def test_a_token_endpoint_fault_is_told_backed_off_and_recovered_from(
    make_stack: MakeStack,
    aiohttp_server: StartServer,
    tmp_path: Path,
    case: Case,
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(FIRST_SECRET + "\n")
    stack = await make_stack(
        env={"SMARTDOC_CLIENT_SECRET": ""},
        client_secret_file=str(secret_file),
        token_timeout_seconds=TOKEN_TIMEOUT_SECONDS,
    )
    switch = Switch(case, stack, aiohttp_server, secret_file)
    assert _statuses(await traffic(stack, 20)) == {200}  # token-1, and warm connections
    await until_token_fetches(stack, 1)
    with tracing():
        before = measure()
        await switch.on()
        await _while_failing(stack, case)
        await switch.off()
        await _after_clearing(stack, case)
        up = 2 if case.fault == "down" else 6  # a server that is down sees no request
        assert len(stack.endpoint.requests) == up
        assert stack.endpoint.issued == ["token-1", "token-2"]
        forget(stack)
        await assert_nothing_leaked(before)


async def _while_failing(stack: Stack, case: Case) -> None:
    # Past the refresh time (3300 s), before expiry: the background refresh fails, and the
    # clients, still served with token-1, never notice.
    stack.clock.advance(3400)
    await until_token_fetches(stack, 2)
    assert _statuses(await traffic(stack, 20)) == {200}
    # Expired, and the first backoff step (at most 1 s) over: one more attempt, whatever the
    # number of clients asking; then one per backoff step (at most 2 s, then 4 s).
    fetches = 2
    for step_seconds in (200, 2, 4):
        stack.clock.advance(step_seconds + 0.01)
        _assert_told(case, await traffic(stack, BURST))
        fetches += 1
        await until_token_fetches(stack, fetches)
    assert set(stack.upstream.tokens_seen) == {"token-1"}


async def _after_clearing(stack: Stack, case: Case) -> None:
    # The fourth failure in a row backs off 4 to 8 s: before 4 s, the negative cache answers.
    stack.clock.advance(3.9)
    _assert_told(case, await traffic(stack, 20))
    await until_token_fetches(stack, 5)
    # After 8 s, the next attempt is due, and it succeeds: nothing was restarted.
    stack.clock.advance(4.2)
    assert _statuses(await traffic(stack, BURST)) == {200}
    await until_token_fetches(stack, 6)
    assert set(stack.upstream.tokens_seen[-BURST:]) == {"token-2"}
