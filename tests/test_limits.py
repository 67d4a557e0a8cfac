"""Limits on what clients can make the proxy hold: the rules in proxy.limits by their tables,
then each limit through real sockets, with ordinary requests still served meanwhile."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong

from proxy.config import load_config
from proxy.connection import ConnectionLimits, parse_fault
from proxy.errors import HeadTooLarge, MalformedRequest, RequestLineTooLong
from proxy.keys import REPLAY_BUDGET
from proxy.limits import (
    OPEN_FILES_CEILING,
    BodyWait,
    HeadMeter,
    InFlight,
    ReplayBudget,
    body_wait,
    open_files_target,
    streaming_share,
)
from tests.conftest import MakeStack
from tests.fakes import FakeUpstream, Responder
from tests.raw_clients import held_open, normal_get, read_outcome, send_raw, trickle

PROBLEM = "urn:smartdoc-proxy:problem:"


def test_a_head_meter_leaves_room_up_to_its_limit_and_starts_again_per_request() -> None:
    meter = HeadMeter(max_bytes=100)
    assert meter.room() == 100
    meter.received(60)
    assert meter.room() == 40
    meter.received(40)
    assert meter.room() == 0
    meter.completed()
    assert (meter.size, meter.room()) == (0, 100)


@pytest.mark.parametrize(
    ("total", "requests", "granted"),
    [
        (1000, [400, 600], [True, True]),
        (1000, [400, 601], [True, False]),
        (1000, [1001], [False]),
        (1000, [0, 1000, 0], [True, True, True]),
        (0, [0, 1], [True, False]),
    ],
)
def test_the_replay_budget_grants_a_body_only_if_all_of_it_fits(
    total: int, requests: list[int], granted: list[bool]
) -> None:
    budget = ReplayBudget(total)
    assert [budget.grant(size) for size in requests] == granted
    assert budget.held_bytes == sum(s for s, g in zip(requests, granted, strict=True) if g)


def test_the_replay_budget_gets_back_what_it_granted() -> None:
    budget = ReplayBudget(1000)
    assert budget.grant(1000)
    assert not budget.grant(1)
    budget.release(1000)
    assert budget.grant(1)


def test_in_flight_admits_up_to_its_cap_and_again_after_one_leaves() -> None:
    in_flight = InFlight(2)
    assert [in_flight.admit() for _ in range(3)] == [True, True, False]
    in_flight.leave()
    assert in_flight.admit()


@pytest.mark.parametrize(
    ("now", "deadline", "idle", "expected"),
    [
        (0.0, 300.0, 30.0, (30.0, BodyWait.IDLE)),
        (280.0, 300.0, 30.0, (20.0, BodyWait.TOTAL)),
        (270.0, 300.0, 30.0, (30.0, BodyWait.IDLE)),
        (301.0, 300.0, 30.0, (0.0, BodyWait.TOTAL)),
    ],
)
def test_a_body_read_waits_for_the_idle_timeout_or_what_is_left_of_the_total(
    now: float, deadline: float, idle: float, expected: tuple[float, BodyWait]
) -> None:
    assert body_wait(now, deadline, idle) == expected


@pytest.mark.parametrize(("pool", "share"), [(100, 50), (10, 5), (3, 1), (1, 1)])
def test_streamed_bodies_may_hold_half_the_pool_and_at_least_one(pool: int, share: int) -> None:
    assert streaming_share(pool) == share


INF = -1


@pytest.mark.parametrize(
    ("soft", "hard", "target"),
    [
        (1024, 524288, 524288),
        (20000, 20000, 20000),
        (1024, INF, OPEN_FILES_CEILING),
        (2_000_000, INF, 2_000_000),
        (INF, INF, INF),
    ],
)
def test_the_open_files_soft_limit_is_raised_to_the_hard_limit(
    soft: int, hard: int, target: int
) -> None:
    assert open_files_target(soft, hard, unlimited=INF) == target


LIMITS = ConnectionLimits(10, max_header_bytes=65536, max_request_line_bytes=8190, max_headers=100)


@pytest.mark.parametrize(
    ("exc", "fault"),
    [
        (LineTooLong(b"/aaa", 8190), RequestLineTooLong),
        (LineTooLong(b"X-Big", 65536), HeadTooLarge),
        (BadHttpMessage("Too many headers received"), HeadTooLarge),
        (BadHttpMessage("Duplicate 'Content-Length' header found."), MalformedRequest),
    ],
)
def test_what_the_parser_refuses_is_named_by_the_limit_it_broke(
    exc: HttpProcessingError, fault: type[Exception]
) -> None:
    assert type(parse_fault(exc, LIMITS)) is fault


def test_a_request_line_limit_equal_to_the_head_limit_is_reported_as_the_head() -> None:
    same = ConnectionLimits(10, max_header_bytes=8190, max_request_line_bytes=8190, max_headers=9)
    assert type(parse_fault(LineTooLong(b"/a", 8190), same)) is HeadTooLarge


def test_every_limit_has_a_sane_default() -> None:
    config = load_config({"client_id": "x"}, {"SMARTDOC_CLIENT_SECRET": "s"})
    assert config.max_header_bytes == 64 * 1024
    assert config.client_header_timeout_seconds == 10
    assert config.client_body_timeout_seconds == 30
    assert config.client_body_total_timeout_seconds == 300
    assert config.keepalive_timeout_seconds == 75
    assert config.max_headers == 100
    assert config.max_request_line_bytes == 8190
    assert config.max_body_bytes == 100 * 1024 * 1024
    assert config.max_requests_in_flight == 1000
    assert config.replay_budget_bytes == 16 * 1024 * 1024
    # Below the 5 s of Apache httpd and Node, the shortest common upstream idle timeouts.
    assert config.upstream_keepalive_seconds < 5


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    """Wait until ``condition`` holds, at most ``within`` seconds."""
    async with asyncio.timeout(within):
        # A fake's state, which no event announces.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    length = int(head.lower().partition(b"content-length:")[2].split(b"\r\n")[0])
    return int(head.split(b" ")[1]), await reader.readexactly(length)


async def test_a_head_that_does_not_arrive_in_time_gets_408_and_is_closed(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(client_header_timeout_seconds="0.5")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with held_open(stack.client.port, b"GET /api/x HTTP/1.1\r\nHost: p\r\nX-Slow: ") as r:
        assert (await stack.client.get("/api/meanwhile")).status == 200
        outcome = await read_outcome(r, within=3)
    assert (outcome.status, outcome.closed) == (408, True)
    assert outcome.problem["type"] == PROBLEM + "header-timeout"
    assert 0.4 < loop.time() - started < 2
    assert [r.raw_path for r in stack.upstream.received] == ["/api/meanwhile"]


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(client_header_timeout_seconds="0.5")
    async with held_open(stack.client.port, b"") as reader:
        outcome = await read_outcome(reader, within=3)
    assert (outcome.status, outcome.closed) == (408, True)


async def test_a_head_dribbled_in_within_the_timeout_is_served(make_stack: MakeStack) -> None:
    stack = await make_stack(client_header_timeout_seconds="2")
    request = b"GET /api/slow-head HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
    outcome = await trickle(stack.client.port, request, every=0.01, within=3)
    assert outcome.status == 200


async def test_a_later_requests_head_is_timed_from_its_first_byte_not_the_last_answer(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(client_header_timeout_seconds="0.5", keepalive_timeout_seconds="5")
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.client.port)
    try:
        writer.write(b"GET /api/first HTTP/1.1\r\nHost: p\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        await asyncio.sleep(0.8)  # idle for longer than the header timeout: keep-alive rules
        writer.write(b"GET /api/second HTTP/1.1\r\nHost: p\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        writer.write(b"GET /api/third HTTP/1.1\r\nHost: p\r\n")
        outcome = await read_outcome(reader, within=3)
    finally:
        writer.close()
    assert (outcome.status, outcome.closed) == (408, True)


async def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(keepalive_timeout_seconds="0.4")
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.client.port)
    try:
        writer.write(b"GET /api/x HTTP/1.1\r\nHost: p\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        answered = loop.time()
        outcome = await read_outcome(reader, within=3)
    finally:
        writer.close()
    assert (outcome.answer, outcome.closed) == (b"", True)
    assert 0.3 < loop.time() - answered < 2


def _headers(count: int, size: int) -> bytes:
    return b"".join(b"X-H%d: %s\r\n" % (i, b"v" * size) for i in range(count))


SMALL_HEAD_LIMITS = {"max_header_bytes": "4096", "max_request_line_bytes": "1024",
                     "max_headers": "10"}  # fmt: skip


@pytest.mark.parametrize(
    ("request_bytes", "status", "slug"),
    [
        pytest.param(b"GET /" + b"a" * 1100 + b" HTTP/1.1\r\nHost: p\r\n\r\n",
                     414, "request-line-too-long", id="request-line"),
        pytest.param(b"GET /x HTTP/1.1\r\nHost: p\r\n" + _headers(5, 1000) + b"\r\n",
                     431, "headers-too-large", id="headers-together"),
        pytest.param(b"GET /x HTTP/1.1\r\nHost: p\r\n" + _headers(1, 5000) + b"\r\n",
                     431, "headers-too-large", id="one-header"),
        pytest.param(b"GET /x HTTP/1.1\r\nHost: p\r\n" + _headers(10, 1) + b"\r\n",
                     431, "headers-too-large", id="header-count"),
        pytest.param(b"GET /x HTTP/1.1\r\nHost: p\r\n" + _headers(5, 1000),
                     431, "headers-too-large", id="unfinished-head"),
        pytest.param(b"GET /x HTTP/1.1\r\nHost: p\r\nConnection: close\r\n" + _headers(3, 1000)
                     + b"\r\n", 200, None, id="within-every-limit"),
    ],
)  # fmt: skip
async def test_the_head_limits_are_configurable_and_answered_as_problems(
    make_stack: MakeStack, request_bytes: bytes, status: int, slug: str | None
) -> None:
    stack = await make_stack(**SMALL_HEAD_LIMITS)
    # Within 1 s: an unfinished head is refused as soon as it is over, not at the timeout.
    outcome = await send_raw(stack.client.port, request_bytes, within=1)
    assert outcome.status == status
    if slug is not None:
        assert outcome.problem["type"] == PROBLEM + slug
        assert outcome.closed
        assert stack.upstream.received == []
    assert await normal_get(stack.client.port) == 200


async def test_a_body_announced_over_the_limit_gets_413_before_it_is_sent(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(max_body_bytes="1000")
    head = b"POST /api/x HTTP/1.1\r\nHost: p\r\nContent-Length: 1001\r\n\r\n"
    async with held_open(stack.client.port, head) as reader:
        outcome = await read_outcome(reader, within=0.5)
    assert outcome.status == 413
    assert outcome.problem["type"] == PROBLEM + "body-too-large"
    # aiohttp reads on for a while (lingering) so that a client still sending sees the answer.
    assert b"\r\nConnection: close\r\n" in outcome.answer
    assert stack.upstream.received == []


async def test_a_chunked_body_that_grows_over_the_limit_is_cut_and_never_complete_upstream(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(max_body_bytes="1000", replay_limit_bytes="0")
    chunk = b"%x\r\n%s\r\n" % (600, b"c" * 600)
    head = b"POST /api/x HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n"
    outcome = await send_raw(stack.client.port, head + chunk + chunk, within=0.5)
    assert outcome.status == 413
    assert b"\r\nConnection: close\r\n" in outcome.answer
    assert stack.upstream.received == []
    assert await normal_get(stack.client.port) == 200


@pytest.mark.parametrize("replay_limit", ["1000", "10"], ids=["kept-for-resend", "streamed"])
async def test_a_body_that_stalls_gets_408_and_nothing_reaches_the_upstream(
    make_stack: MakeStack, replay_limit: str
) -> None:
    stack = await make_stack(client_body_timeout_seconds="0.5", replay_limit_bytes=replay_limit)
    head = b"POST /api/x HTTP/1.1\r\nHost: p\r\nContent-Length: 100\r\n\r\n"
    async with held_open(stack.client.port, head + b"x" * 10) as reader:
        assert await normal_get(stack.client.port) == 200
        outcome = await read_outcome(reader, within=3)
    assert (outcome.status, outcome.closed) == (408, True)
    assert outcome.problem["type"] == PROBLEM + "body-timeout"
    assert [r.raw_path for r in stack.upstream.received] == ["/api/v1.0/normal"]


async def test_a_body_that_trickles_in_is_cut_at_the_total_timeout(make_stack: MakeStack) -> None:
    stack = await make_stack(
        client_body_timeout_seconds="0.5", client_body_total_timeout_seconds="1"
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    head = b"POST /api/x HTTP/1.1\r\nHost: p\r\nContent-Length: 100\r\n\r\n"
    outcome = await trickle(stack.client.port, b"x" * 100, every=0.1, within=3, at_once=head)
    assert (outcome.status, outcome.closed) == (408, True)
    assert "not complete within 1 s" in str(outcome.problem["detail"])
    assert 0.9 < loop.time() - started < 2.5


def _slow_path(release: asyncio.Event) -> Responder:
    """An upstream answer that waits for ``release`` on /api/slow."""

    async def respond(request: web.Request) -> web.StreamResponse:
        if request.path == "/api/slow":
            await release.wait()
        return web.json_response({})

    return respond


async def test_beyond_the_in_flight_cap_requests_get_503_at_once_and_probes_still_answer(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    release = asyncio.Event()
    upstream.responder = _slow_path(release)
    stack = await make_stack(max_requests_in_flight="2")
    holding = [asyncio.create_task(stack.client.get("/api/slow")) for _ in range(2)]
    await until(lambda: len(upstream.received) == 2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    refused = await stack.client.get("/api/more")
    assert loop.time() - started < 0.5
    assert (refused.status, refused.headers["Retry-After"]) == (503, "1")
    assert (await refused.json())["type"] == PROBLEM + "too-many-in-flight"
    assert (await stack.client.get("/_proxy/healthz")).status == 200
    release.set()
    assert [r.status for r in await asyncio.gather(*holding)] == [200, 200]
    assert (await stack.client.get("/api/more")).status == 200


def _rejecting_once(path: str, release: asyncio.Event) -> Responder:
    """An upstream that answers 401 to the first token on ``path``, and holds /api/slow until
    ``release``."""

    async def respond(request: web.Request) -> web.StreamResponse:
        if request.path == "/api/slow":
            await release.wait()
        if request.path == path and request.headers["Authorization"] == "Bearer token-1":
            return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        return web.json_response({})

    return respond


@pytest.mark.parametrize(("budget_taken", "resent"), [(False, True), (True, False)])
async def test_a_body_is_kept_for_a_resend_only_while_the_replay_budget_has_room(
    make_stack: MakeStack, upstream: FakeUpstream, budget_taken: bool, resent: bool
) -> None:
    release = asyncio.Event()
    upstream.responder = _rejecting_once("/api/x", release)
    stack = await make_stack(replay_budget_bytes="1000")
    if budget_taken:
        holder = asyncio.create_task(stack.client.post("/api/slow", data=b"h" * 800))
        await until(lambda: len(upstream.received) == 1)
    response = await stack.client.post("/api/x", data=b"b" * 800)
    assert response.status == (200 if resent else 401)
    assert [r.raw_path for r in upstream.received].count("/api/x") == (2 if resent else 1)
    release.set()
    if budget_taken:
        assert (await holder).status == 200
    assert stack.client.server.app[REPLAY_BUDGET].held_bytes == 0


async def test_100_stalled_bodies_hold_no_more_than_the_budget_and_all_time_out(
    make_stack: MakeStack,
) -> None:
    mib = 1024 * 1024
    stack = await make_stack(
        replay_budget_bytes=str(8 * mib),
        client_body_timeout_seconds="1",
        upstream_pool_timeout_seconds="1",
    )
    budget = stack.client.server.app[REPLAY_BUDGET]
    head = b"POST /api/x HTTP/1.1\r\nHost: p\r\nContent-Length: %d\r\n\r\n" % mib
    held = []

    async def stalled() -> int | None:
        async with held_open(stack.client.port, head + b"b" * (mib // 2)) as reader:
            held.append(budget.held_bytes)
            return (await read_outcome(reader, within=2.5)).status

    clients = [asyncio.create_task(stalled()) for _ in range(100)]
    await asyncio.sleep(0.3)
    assert await normal_get(stack.client.port, within=1) == 200
    statuses = collections.Counter(await asyncio.gather(*clients))
    assert max(held) <= 8 * mib
    assert set(statuses) <= {408, 503}, statuses  # stalled, or no streaming connection free
    assert budget.held_bytes == 0


async def test_clients_declaring_2_gb_bodies_get_413_at_once_and_others_are_served(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    head = b"POST /api/upload HTTP/1.1\r\nHost: p\r\nContent-Length: 2000000000\r\n\r\nb"
    clients = [send_raw(stack.client.port, head, within=0.5) for _ in range(100)]
    outcomes = asyncio.gather(*clients)
    assert await normal_get(stack.client.port, within=1) == 200
    assert {outcome.status for outcome in await outcomes} == {413}


async def test_slow_streamed_bodies_hold_at_most_half_the_pool_and_a_get_is_served_at_once(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(
        upstream_pool_size="10",
        upstream_pool_timeout_seconds="0.5",
        max_body_bytes="3000000000",
    )
    head = b"POST /api/upload HTTP/1.1\r\nHost: p\r\nContent-Length: 2000000000\r\n\r\nb"
    clients = [asyncio.create_task(send_raw(stack.client.port, head, within=1)) for _ in range(100)]
    await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await normal_get(stack.client.port, within=1) == 200
    assert loop.time() - started < 0.5
    outcomes = collections.Counter(outcome.status for outcome in await asyncio.gather(*clients))
    # Five streams hold their connections (no answer yet); the rest are told to come back.
    assert outcomes == {503: 95, None: 5}


async def test_an_idle_pooled_upstream_connection_is_closed_before_the_upstreams_timeout(
    make_stack: MakeStack,
) -> None:
    loop = asyncio.get_running_loop()
    idle_for: list[float] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        answered = loop.time()
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                idle_for.append(loop.time() - answered)
                writer.close()
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            answered = loop.time()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stack = await make_stack(
            upstream=f"http://127.0.0.1:{port}", upstream_keepalive_seconds="0.3"
        )
        assert (await stack.client.get("/api/a")).status == 200
        await until(lambda: bool(idle_for))
        assert 0.25 < idle_for[0] < 1.5, idle_for
        assert (await stack.client.get("/api/b")).status == 200
        assert connections == 2
    finally:
        server.close()
