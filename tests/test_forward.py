"""Forwarding: what the upstream receives and what the client gets back."""

from __future__ import annotations

import asyncio
import gzip
import io

import pytest
from aiohttp import web
from yarl import URL

from proxy.forward import upstream_url
from proxy.headers import rewrite_location
from proxy.policy import replayable
from tests.conftest import MakeStack
from tests.fakes import FakeUpstream, json_of, raw_exchange, raw_upstream

TARGETS = [
    "/api/v1.0/external/sdtask/status?taskId=1",
    "/a%2Fb/c%20d?x=%41&x=&Y=1&y=2",
    "/api/v1.0/external/sdtask/statuslist?workspaceId=1&workspaceId=2&taskStatus=30",
    "/path/./with/../dots?q=a+b%2Bc",
    "/%7e%7E/caf%C3%A9?taskid=7&TASKID=8",
    "/search?q=%E2%82%AC&empty=&=v&flag",
]


@pytest.mark.parametrize("target", TARGETS)
async def test_upstream_receives_path_and_query_byte_for_byte(
    make_stack: MakeStack, target: str
) -> None:
    stack = await make_stack()
    request = f"GET {target} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n"
    answer = await raw_exchange(stack.client.port, request.encode())
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert stack.upstream.received[-1].raw_path == target


async def test_a_target_cannot_choose_another_host(make_stack: MakeStack) -> None:
    stack = await make_stack()
    upstream = str(stack.upstream_server.make_url("")).rstrip("/")
    for target, status in (
        ("//127.0.0.2:9/elsewhere", b"200"),
        ("http://127.0.0.2:9/elsewhere?q=1", b"400"),
        ("http://127.0.0.2:9%2F@x/elsewhere", b"400"),
        (f"{upstream}/own-origin?q=1", b"200"),
    ):
        request = f"GET {target} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n"
        answer = await raw_exchange(stack.client.port, request.encode())
        assert answer.split(b" ", 2)[1] == status, (target, answer)
    assert [r.raw_path for r in stack.upstream.received] == [
        "//127.0.0.2:9/elsewhere",
        "/own-origin?q=1",
    ]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/x?a=%2F", "https://api.test/x?a=%2F"),
        ("//evil.test/x", "https://api.test//evil.test/x"),
        ("https://api.test/y?z=1", "https://api.test/y?z=1"),
    ],
)
def test_upstream_url_keeps_the_configured_origin(target: str, expected: str) -> None:
    assert str(upstream_url(URL("https://api.test"), target)) == expected


@pytest.mark.parametrize(
    ("length", "has_body", "limit", "expected"),
    [
        (None, False, 10, True),
        (0, True, 10, True),
        (10, True, 10, True),
        (11, True, 10, False),
        (None, True, 10, False),
    ],
)
def test_replayable(length: int | None, has_body: bool, limit: int, expected: bool) -> None:
    assert replayable(length, has_body, limit) is expected


async def test_client_authorization_is_replaced_by_the_token(make_stack: MakeStack) -> None:
    stack = await make_stack()
    await stack.client.get("/x", headers={"Authorization": "Bearer client-own"})
    received = stack.upstream.received[-1].headers
    assert received.getall("Authorization") == ["Bearer token-1"]


async def test_hop_by_hop_and_connection_listed_headers_are_dropped(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    await stack.client.get(
        "/x",
        headers={
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic abc",
            "TE": "trailers",
            "Trailer": "X-T",
            "Upgrade": "websocket",
            "X-Kept": "yes",
        },
    )
    received = stack.upstream.received[-1].headers
    for name in ("X-Secret-Hop", "Keep-Alive", "Proxy-Authorization", "TE", "Trailer", "Upgrade"):
        assert name not in received, name
    assert received["X-Kept"] == "yes"


async def test_end_to_end_headers_pass_unchanged_and_nothing_is_invented(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    await stack.client.get(
        "/x",
        headers={"User-Agent": "LegacyClient/1.0", "Content-Type": "application/json"},
        skip_auto_headers=("Accept", "Accept-Encoding"),
    )
    received = stack.upstream.received[-1].headers
    assert received["User-Agent"] == "LegacyClient/1.0"
    assert received["Content-Type"] == "application/json"
    assert "Accept-Encoding" not in received
    assert "Accept" not in received
    assert received["Host"] == f"127.0.0.1:{stack.upstream_server.port}"


async def test_forwarded_headers_are_appended(make_stack: MakeStack) -> None:
    stack = await make_stack()
    await stack.client.get(
        "/x",
        headers={
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "edge.example",
            "Host": "proxy.example:8080",
        },
    )
    received = stack.upstream.received[-1].headers
    assert received["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert received["X-Forwarded-Proto"] == "https, http"
    assert received["X-Forwarded-Host"] == "edge.example, proxy.example:8080"


async def test_hop_by_hop_headers_are_dropped_from_responses(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    async def respond(request: web.Request) -> web.Response:
        return web.Response(
            text="ok",
            headers={"Connection": "X-Hop", "X-Hop": "1", "X-End": "2", "Keep-Alive": "t=1"},
        )

    upstream.responder = respond
    stack = await make_stack()
    response = await stack.client.get("/x")
    assert response.headers["X-End"] == "2"
    assert "X-Hop" not in response.headers
    assert "Keep-Alive" not in response.headers


async def test_body_and_content_length_reach_the_upstream(make_stack: MakeStack) -> None:
    stack = await make_stack()
    body = b'{"context": {"url": "https://example.test/doc.pdf"}}'
    response = await stack.client.post("/api/v1.0/external/sdtask/process", data=body)
    assert response.status == 200
    received = stack.upstream.received[-1]
    assert received.body == body
    assert received.headers["Content-Length"] == str(len(body))


async def test_large_body_streams_with_its_content_length(make_stack: MakeStack) -> None:
    stack = await make_stack(replay_limit_bytes="1024")
    body = b"x" * (3 * 1024 * 1024)
    response = await stack.client.put("/upload", data=io.BytesIO(body))
    assert json_of(await response.read())["bytes"] == len(body)
    received = stack.upstream.received[-1]
    assert received.headers["Content-Length"] == str(len(body))
    assert "Transfer-Encoding" not in received.headers


async def test_chunked_request_body_is_streamed(make_stack: MakeStack) -> None:
    stack = await make_stack()

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(4):
            yield b"a" * 1000

    response = await stack.client.post("/upload", data=chunks())
    assert json_of(await response.read())["bytes"] == 4000
    assert stack.upstream.received[-1].body == b"a" * 4000


async def test_compressed_response_passes_through_byte_for_byte(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    compressed = gzip.compress(b'{"items": []}' * 100)

    async def respond(request: web.Request) -> web.Response:
        return web.Response(
            body=compressed,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    upstream.responder = respond
    stack = await make_stack()
    response = await stack.client.get("/export", auto_decompress=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Length"] == str(len(compressed))
    assert await response.read() == compressed


async def test_large_response_streams_through(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"y" * 65536)
        await response.write_eof()
        return response

    upstream.responder = respond
    stack = await make_stack()
    response = await stack.client.get("/GetExportData/1")
    assert len(await response.read()) == 64 * 65536


@pytest.mark.parametrize(
    ("location", "expected_suffix"),
    [
        ("{upstream}/api/v1.0/next?x=%2F", "/api/v1.0/next?x=%2F"),
        ("/relative/path", "/relative/path"),
        ("https://other.example/elsewhere", "https://other.example/elsewhere"),
    ],
)
async def test_redirects_are_not_followed_and_upstream_locations_point_at_the_proxy(
    make_stack: MakeStack, upstream: FakeUpstream, location: str, expected_suffix: str
) -> None:
    stack = await make_stack()
    upstream_origin = str(stack.upstream_server.make_url("")).rstrip("/")
    proxy_origin = str(stack.client.make_url("")).rstrip("/")

    async def respond(request: web.Request) -> web.Response:
        return web.Response(
            status=302, headers={"Location": location.format(upstream=upstream_origin)}
        )

    upstream.responder = respond
    response = await stack.client.get("/old", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == expected_suffix.format(proxy=proxy_origin)
    assert len(stack.upstream.received) == 1


async def test_head_returns_headers_without_a_body(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    async def respond(request: web.Request) -> web.Response:
        return web.Response(body=b"0123456789", content_type="application/json")

    upstream.responder = respond
    stack = await make_stack()
    response = await stack.client.head("/x")
    assert response.status == 200
    assert response.headers["Content-Length"] == "10"
    assert await response.read() == b""
    assert stack.upstream.received[-1].method == "HEAD"


@pytest.mark.parametrize("status", [204, 304])
async def test_bodiless_statuses_pass_through(
    make_stack: MakeStack, upstream: FakeUpstream, status: int
) -> None:
    async def respond(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"ETag": '"v1"'})

    upstream.responder = respond
    stack = await make_stack()
    response = await stack.client.get("/x", headers={"If-None-Match": '"v1"'})
    assert response.status == status
    assert response.headers["ETag"] == '"v1"'
    assert await response.read() == b""
    assert stack.upstream.received[-1].headers["If-None-Match"] == '"v1"'


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE", "OPTIONS", "PROPFIND"])
async def test_any_method_is_forwarded(make_stack: MakeStack, method: str) -> None:
    stack = await make_stack()
    response = await stack.client.request(method, "/api/v1.0/external/x?taskId=1")
    assert response.status == 200
    assert stack.upstream.received[-1].method == method


async def test_connect_is_refused_not_tunnelled(make_stack: MakeStack) -> None:
    stack = await make_stack()
    for target in ("/x", "127.0.0.2:443"):
        request = f"CONNECT {target} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n"
        answer = await raw_exchange(stack.client.port, request.encode())
        assert answer.split(b" ", 2)[1] == b"405", answer
        assert b"application/problem+json" in answer
    assert stack.upstream.received == []


async def test_client_disconnect_cancels_the_upstream_request(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    started = asyncio.Event()

    async def respond(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(30)
        return web.Response(text="late")

    upstream.responder = respond
    stack = await make_stack()
    request = asyncio.create_task(stack.client.get("/slow"))
    await asyncio.wait_for(started.wait(), 5)
    request.cancel()
    for _ in range(100):
        if upstream.cancelled:
            break
        await asyncio.sleep(0.02)
    assert upstream.cancelled == 1


async def test_expect_100_continue_is_answered_and_the_body_forwarded(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    await stack.client.get("/warm")  # a token in hand, so the answer is not delayed by a fetch
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.client.port)
    try:
        writer.write(
            b"POST /api/v1.0/external/sdbatch HTTP/1.1\r\nHost: proxy\r\n"
            b"Content-Type: application/json\r\nContent-Length: 20\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(b'{"displayName":"b1"}')
        answer = await asyncio.wait_for(reader.read(-1), 5)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    received = stack.upstream.received[-1]
    assert received.body == b'{"displayName":"b1"}'
    assert "Expect" not in received.headers


async def test_a_refused_request_is_not_invited_to_send_its_body(
    make_stack: MakeStack,
) -> None:
    # 100 Continue only once every check has passed: not before a 413 (nor a 401 or 403).
    stack = await make_stack(max_body_bytes="1000")
    request = (
        b"POST /api/upload HTTP/1.1\r\nHost: proxy\r\nContent-Length: 500000000\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.client.port)
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 413 ")  # the first thing said: no 100 before it


async def test_an_unknown_expectation_is_a_417_of_the_proxys_that_does_not_say_it_back(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    request = (
        b"POST /api/x HTTP/1.1\r\nHost: proxy\r\nContent-Length: 2\r\n"
        b"Expect: <script>alert(1)</script>\r\nConnection: close\r\n\r\n{}"
    )
    answer = await raw_exchange(stack.client.port, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 417 ")
    assert b"Server: smartdoc-proxy" in head
    assert b"application/problem+json" in head
    assert b"script" not in body
    assert stack.upstream.received == []


async def test_http_1_0_clients_get_a_complete_answer(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no Content-Length: chunked upstream
        await response.prepare(request)
        await response.write(b"part one, ")
        await response.write(b"part two")
        await response.write_eof()
        return response

    upstream.responder = respond
    stack = await make_stack()
    answer = await raw_exchange(
        stack.client.port, b"GET /api/v1.0/x HTTP/1.0\r\nHost: proxy\r\n\r\n"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 ")
    assert b"chunked" not in head.lower()
    assert body == b"part one, part two"


async def test_trace_is_refused_so_the_token_is_never_echoed(make_stack: MakeStack) -> None:
    stack = await make_stack()
    answer = await raw_exchange(
        stack.client.port, b"TRACE /api/x HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 405 ")
    assert b"application/problem+json" in answer
    assert b"token-" not in answer
    assert stack.upstream.received == []


@pytest.mark.parametrize("coding", ["gzip, chunked", "deflate,chunked"])
async def test_a_transfer_coding_other_than_chunked_is_refused_with_501(
    make_stack: MakeStack, coding: str
) -> None:
    stack = await make_stack()
    request = (
        f"POST /api/x HTTP/1.1\r\nHost: proxy\r\nTransfer-Encoding: {coding}\r\n"
        "Connection: close\r\n\r\n0\r\n\r\n"
    )
    answer = await raw_exchange(stack.client.port, request.encode())
    assert answer.startswith(b"HTTP/1.1 501 "), answer
    assert stack.upstream.received == []


def test_a_target_without_an_absolute_path_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute path"):
        upstream_url(URL("https://api.test"), "x:.evil.test/steal")


async def test_repeated_headers_differing_in_case_all_reach_the_upstream(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    request = b"GET /x HTTP/1.1\r\nHost: p\r\nX-A: 1\r\nx-a: 2\r\nConnection: close\r\n\r\n"
    await raw_exchange(stack.client.port, request)
    assert stack.upstream.received[-1].headers.getall("X-A") == ["1", "2"]


async def test_nothing_is_added_to_a_bare_request(make_stack: MakeStack) -> None:
    stack = await make_stack()
    request = b"POST /api/x HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    await raw_exchange(stack.client.port, request)
    received = stack.upstream.received[-1].headers
    for invented in ("User-Agent", "Content-Type", "Accept", "Accept-Encoding", "Connection"):
        assert invented not in received, invented


async def test_nothing_is_added_to_a_bare_response(make_stack: MakeStack) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nraw"
    async with raw_upstream(answer) as (port, _):
        stack = await make_stack(upstream=f"http://127.0.0.1:{port}")
        response = await stack.client.get("/x")
        assert await response.read() == b"raw"
    assert "Content-Type" not in response.headers
    assert "Server" not in response.headers


async def test_one_keep_alive_connection_serves_sequential_requests(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    peers: list[object] = []

    async def respond(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        return web.Response(text="ok")

    upstream.responder = respond
    stack = await make_stack()
    for _ in range(5):
        await (await stack.client.get("/x")).read()
    assert len(set(peers)) == 1


async def test_cookies_set_by_the_upstream_are_not_kept_for_other_clients(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    async def respond(request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"Set-Cookie": "session=one-client; Path=/"})

    upstream.responder = respond
    stack = await make_stack()
    # A host name, not an address: cookie jars keep no cookies for IP addresses.
    port = stack.upstream_server.port
    stack = await make_stack(upstream=f"http://localhost:{port}")
    first = await stack.client.get("/login")
    assert first.headers["Set-Cookie"].startswith("session=one-client")
    stack.client.session.cookie_jar.clear()
    await stack.client.get("/next")
    assert "Cookie" not in stack.upstream.received[-1].headers


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("https://api.test/a?b=%2F", "http://proxy:8080/a?b=%2F"),
        ("https://API.test/a", "http://proxy:8080/a"),
        ("HTTPS://api.test/a", "http://proxy:8080/a"),
        ("https://api.test:443/a", "http://proxy:8080/a"),
        ("//api.test/a", "http://proxy:8080/a"),
        ("https://api.test", "http://proxy:8080"),
        ("https://api.test:8443/a", "https://api.test:8443/a"),
        ("http://api.test/a", "http://api.test/a"),
        ("https://api.test.evil/a", "https://api.test.evil/a"),
        ("https://evil/a?u=https://api.test/", "https://evil/a?u=https://api.test/"),
        ("/relative", "/relative"),
        ("https://api.test:bad/a", "https://api.test:bad/a"),
    ],
)
def test_rewrite_location(location: str, expected: str) -> None:
    assert rewrite_location(location, URL("https://api.test"), "http://proxy:8080") == expected
