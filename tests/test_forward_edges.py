"""Forwarding at its edges: odd targets and header bytes, redirects, the proxy's own answers,
cut answers, a busy pool and keep-alive connections the upstream has closed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from proxy import logs
from tests.conftest import MakeStack
from tests.fakes import FakeUpstream, json_of, raw_exchange

Connected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_upstream(connected: Connected) -> AsyncIterator[str]:
    """An upstream on a raw socket, each connection handed to ``connected``: its URL."""
    server = await asyncio.start_server(connected, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


def _status_line(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0]


def _access(caplog: pytest.LogCaptureFixture) -> list[logs.AccessRecord]:
    found = [getattr(r, "access", None) for r in caplog.records]
    return [record for record in found if isinstance(record, logs.AccessRecord)]


async def test_a_newline_anywhere_in_the_path_is_forwarded_byte_for_byte(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    target = "/api/a%0Ab/%0A?q=%0A"
    request = f"GET {target} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n".encode()
    answer = await raw_exchange(stack.client.port, request)
    assert _status_line(answer) == b"HTTP/1.1 200 OK"
    assert [r.raw_path for r in stack.upstream.received] == [target]


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        (None, "/next?a=1"),
        ("https://proxy.example.internal", "https://proxy.example.internal/next?a=1"),
    ],
)
async def test_a_redirect_never_points_at_the_host_the_client_named(
    make_stack: MakeStack, upstream: FakeUpstream, public_url: str | None, expected: str
) -> None:
    async def respond(request: web.Request) -> web.Response:
        origin = f"http://{request.host}"
        return web.Response(status=302, headers={"Location": f"{origin}/next?a=1"})

    upstream.responder = respond
    stack = await make_stack(**({"public_url": public_url} if public_url else {}))
    response = await stack.client.get(
        "/old", headers={"Host": "evil.example"}, allow_redirects=False
    )
    assert response.headers["Location"] == expected


@pytest.mark.parametrize(
    ("method", "path"),
    [("TRACE", "/x"), ("GET", "/_proxy/healthz"), ("GET", "/_proxy/readyz"),
     ("GET", "/_proxy/metrics"), ("GET", "/_proxy/nothing"), ("POST", "/_proxy/healthz")],
)  # fmt: skip
async def test_the_proxys_own_answers_disclose_no_versions(
    make_stack: MakeStack, method: str, path: str
) -> None:
    stack = await make_stack()
    response = await stack.client.request(method, path)
    assert response.headers.get("Server", "smartdoc-proxy") == "smartdoc-proxy"


async def test_a_405_says_which_methods_are_allowed(make_stack: MakeStack) -> None:
    stack = await make_stack()
    for method, path in (("TRACE", "/api/x"), ("POST", "/_proxy/healthz")):
        response = await stack.client.request(method, path)
        assert response.status == 405
        assert "GET" in response.headers["Allow"]
        assert response.content_type == "application/problem+json"


async def test_a_header_value_that_is_not_utf8_is_refused(make_stack: MakeStack) -> None:
    stack = await make_stack()
    request = b"GET /api/x HTTP/1.1\r\nHost: p\r\nX-Name: caf\xe9\r\nConnection: close\r\n\r\n"
    answer = await raw_exchange(stack.client.port, request)
    assert _status_line(answer) == b"HTTP/1.1 400 Bad Request"
    assert stack.upstream.received == []


async def test_an_http_0_9_request_is_refused(make_stack: MakeStack) -> None:
    stack = await make_stack()
    answer = await raw_exchange(stack.client.port, b"GET /api/x\r\n\r\n")
    assert b" 200 " not in _status_line(answer)
    assert stack.upstream.received == []


async def test_a_target_that_cannot_be_sent_is_refused_before_any_token_fetch(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(token_timeout_seconds="5")
    stack.endpoint.failures = ["hang"]
    request = b"OPTIONS * HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
    answer = await asyncio.wait_for(raw_exchange(stack.client.port, request), 2)
    assert _status_line(answer) == b"HTTP/1.1 400 Bad Request"


async def test_readiness_names_the_oauth_error_from_the_same_table(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    stack.endpoint.failures = [(400, {"error": "invalid_client"})] * 5
    response = await stack.client.get("/_proxy/readyz")
    assert response.status == 503
    problem = json_of(await response.read())
    assert problem["type"] == "urn:smartdoc-proxy:problem:token-rejected"
    assert problem["code"] == "invalid_client"


async def _reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.transport.abort()


async def test_an_upstream_reset_mid_answer_is_recorded_as_it_happened(
    make_stack: MakeStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with raw_upstream(_reset_mid_body) as url:
        stack = await make_stack(upstream=url)
        request = b"GET /big HTTP/1.1\r\nHost: p\r\n\r\n"
        answer = await raw_exchange(stack.client.port, request)
    assert _status_line(answer) == b"HTTP/1.1 200 OK"
    assert len(answer.partition(b"\r\n\r\n")[2]) == 1000  # a short body, then the cut
    (record,) = [r for r in _access(caplog) if r.path == "/big"]
    assert (record.status, record.bytes) == (200, 1000)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    cut = [r for r in caplog.records if "cut after 1000 bytes" in r.getMessage()]
    assert len(cut) == 1


async def _dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
    with contextlib.suppress(ConnectionError):
        for _ in range(200):
            writer.write(b"x" * 1000)
            await writer.drain()
            await asyncio.sleep(0.01)
    writer.close()


async def test_a_client_that_leaves_mid_answer_is_not_blamed_on_the_upstream(
    make_stack: MakeStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with raw_upstream(_dribble) as url:
        stack = await make_stack(upstream=url)
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.client.port)
        writer.write(b"GET /long HTTP/1.1\r\nHost: p\r\n\r\n")
        await reader.readexactly(3000)  # the head and some of the body
        writer.transport.abort()
        for _ in range(100):
            if [r for r in _access(caplog) if r.path == "/long"]:
                break
            await asyncio.sleep(0.02)
    cut = [r for r in caplog.records if "cut after" in r.getMessage()]
    assert len(cut) == 1, [r.getMessage() for r in caplog.records]
    assert cut[0].getMessage().endswith("client gone")
    assert cut[0].levelno == logging.INFO


async def test_waiting_for_a_pooled_connection_is_bounded(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    release = asyncio.Event()

    async def respond(request: web.Request) -> web.Response:
        if request.path == "/slow":
            await release.wait()
        return web.json_response({})

    upstream.responder = respond
    stack = await make_stack(upstream_pool_size="2", upstream_pool_timeout_seconds="0.3")
    holding = [asyncio.create_task(stack.client.get("/slow")) for _ in range(2)]
    await asyncio.sleep(0.2)
    response = await asyncio.wait_for(stack.client.get("/fast"), 3)
    assert response.status == 503
    assert "Retry-After" in response.headers
    problem = json_of(await response.read())
    assert problem["type"] == "urn:smartdoc-proxy:problem:upstream-busy"
    release.set()
    assert [r.status for r in await asyncio.gather(*holding)] == [200, 200]


class OneRequestPerConnection:
    """An upstream that answers the first request on each connection with keep-alive, and
    closes the connection without answering when a second request arrives on it, as one whose
    idle timeout closed the connection just as the proxy reused it."""

    def __init__(self) -> None:
        self.connections = 0
        self.answered: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().partition(b"content-length:")[2].split(b"\r\n")[0] or 0)
        await reader.readexactly(length)
        self.answered.append(head.split(b"\r\n")[0])
        await asyncio.sleep(0.05)  # holds the connection, so that concurrent ones pile up
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=60\r\n\r\nok")
        await writer.drain()
        await reader.read(1)
        writer.transport.abort()


async def _stale_pool(make_stack: MakeStack, upstream: OneRequestPerConnection):  # type: ignore[no-untyped-def]
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stack = await make_stack(upstream=f"http://127.0.0.1:{port}")
    # Three connections in the pool, each of which will fail when reused.
    warm = await asyncio.gather(*(stack.client.get(f"/warm{i}") for i in range(3)))
    assert [r.status for r in warm] == [200] * 3
    return server, stack


async def test_an_idempotent_request_on_a_stale_connection_is_retried_on_a_new_one(
    make_stack: MakeStack,
) -> None:
    upstream = OneRequestPerConnection()
    server, stack = await _stale_pool(make_stack, upstream)
    try:
        response = await stack.client.get("/again")
        assert response.status == 200
        assert upstream.answered.count(b"GET /again HTTP/1.1") == 1
    finally:
        server.close()


async def test_a_post_on_a_stale_connection_is_not_resent_and_the_client_is_told(
    make_stack: MakeStack,
) -> None:
    upstream = OneRequestPerConnection()
    server, stack = await _stale_pool(make_stack, upstream)
    try:
        response = await stack.client.post("/create", data=b"{}")
        assert response.status == 502
        detail = str(json_of(await response.read())["detail"])
        assert "may have been processed" in detail
        assert upstream.answered.count(b"POST /create HTTP/1.1") == 0
    finally:
        server.close()


async def test_a_client_gone_before_its_answer_is_a_499_line_not_a_traceback(
    make_stack: MakeStack, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def respond(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        return web.json_response({"late": True})

    upstream.responder = respond
    stack = await make_stack()
    _, writer = await asyncio.open_connection("127.0.0.1", stack.client.port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: p\r\n\r\n")
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.6)
    (record,) = [r for r in _access(caplog) if r.path == "/slow"]
    assert record.status == 499
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def _reset_small_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.transport.abort()


async def test_a_small_answer_cut_short_by_the_upstream_is_a_502_that_says_so(
    make_stack: MakeStack,
) -> None:
    async with raw_upstream(_reset_small_answer) as url:
        stack = await make_stack(upstream=url)
        response = await stack.client.post("/api/v1.0/external/sdtask/process", data=b"{}")
        assert response.status == 502
        assert "may have been processed" in str(json_of(await response.read())["detail"])
