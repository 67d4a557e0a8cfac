"""Limits on what clients can make the proxy hold: the rules in proxy.limits by their tables,
then each limit through real sockets, with ordinary requests still served meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong

from proxy.config import load_config
from proxy.connection import ConnectionLimits, parse_fault
from proxy.errors import HeadTooLarge, MalformedRequest, RequestLineTooLong
from proxy.limits import (
    HeadMeter,
)
from tests.conftest import MakeStack
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
    assert config.keepalive_timeout_seconds == 75
    assert config.max_headers == 100
    assert config.max_request_line_bytes == 8190


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
