"""Malformed and hostile requests, as raw bytes on a socket: request smuggling, oversized parts,
invalid methods, bytes that do not belong in a header, slow clients.

Each gets a clean 4xx (or 5xx where HTTP names one: 501, 505) and, where its framing cannot be
trusted, a closed connection; the fake upstream records what reached it, and nothing ambiguous
does. Meanwhile, and after each, an ordinary request on another connection is served. This is
aiohttp's C parser (llhttp), the one that ships in its wheels.
"""

from __future__ import annotations

import asyncio

import pytest

from proxy.errors import MalformedRequest
from proxy.refusals import refusal
from tests.conftest import MakeStack
from tests.raw_clients import held_open, normal_get, read_outcome, trickle

CLOSE = b"Connection: close\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: p\r\n\r\n"


def post(*headers: bytes, body: bytes = b"", version: bytes = b"1.1") -> bytes:
    return b"POST /api/a HTTP/" + version + b"\r\nHost: p\r\n" + b"".join(headers) + b"\r\n" + body


def get(*headers: bytes, target: bytes = b"/api/a", version: bytes = b"1.1") -> bytes:
    return b"GET " + target + b" HTTP/" + version + b"\r\nHost: p\r\n" + b"".join(headers) + b"\r\n"


def field(name: str, value: bytes) -> bytes:
    return name.encode() + b": " + value + b"\r\n"


CHUNKED = field("Transfer-Encoding", b"chunked")
EMPTY_CHUNKED = b"0\r\n\r\n"

# (raw request, expected status, whether the connection must be closed after it)
SMUGGLING = [
    pytest.param(post(field("Content-Length", b"4"), CHUNKED, body=EMPTY_CHUNKED + SMUGGLED),
                 400, True, id="content-length-and-transfer-encoding"),
    pytest.param(post(CHUNKED, field("Content-Length", b"4"), body=EMPTY_CHUNKED + SMUGGLED),
                 400, True, id="transfer-encoding-and-content-length"),
    pytest.param(post(field("Content-Length", b"4"), field("Content-Length", b"40"),
                      body=b"abcd" + SMUGGLED), 400, True, id="conflicting-content-lengths"),
    pytest.param(post(field("Content-Length", b"4"), field("Content-Length", b"4"), body=b"abcd"),
                 400, True, id="repeated-content-length"),
    pytest.param(post(field("Content-Length", b"4, 4"), body=b"abcd"), 400, True,
                 id="content-length-list"),
    pytest.param(post(field("Content-Length", b"+4"), body=b"abcd"), 400, True,
                 id="content-length-plus-sign"),
    pytest.param(post(field("Content-Length", b"-1")), 400, True, id="content-length-negative"),
    pytest.param(post(field("Content-Length", b"0x4"), body=b"abcd"), 400, True,
                 id="content-length-hex"),
    pytest.param(post(field("Content-Length", b"9" * 30)), 400, True,
                 id="content-length-overflow"),
    pytest.param(post(field("Transfer-Encoding", b"xchunked"), body=EMPTY_CHUNKED + SMUGGLED),
                 400, True, id="transfer-encoding-xchunked"),
    pytest.param(post(b"Transfer-Encoding : chunked\r\n", body=EMPTY_CHUNKED + SMUGGLED),
                 400, True, id="transfer-encoding-space-before-colon"),
    pytest.param(post(field("Transfer-Encoding", b"chunked\x0b"), body=EMPTY_CHUNKED),
                 400, True, id="transfer-encoding-vertical-tab"),
    pytest.param(post(field("Transfer-Encoding", b"chunked, chunked"), body=EMPTY_CHUNKED),
                 400, True, id="transfer-encoding-chunked-twice"),
    pytest.param(post(CHUNKED, field("Transfer-Encoding", b"identity"), body=EMPTY_CHUNKED),
                 400, True, id="transfer-encoding-two-fields"),
    pytest.param(post(b"Transfer-Encoding: identity\r\n chunked\r\n", body=EMPTY_CHUNKED),
                 400, True, id="transfer-encoding-obs-fold"),
    pytest.param(post(CLOSE, field("Transfer-Encoding", b"gzip, chunked"), body=EMPTY_CHUNKED),
                 501, None, id="transfer-coding-not-chunked"),
    pytest.param(post(CHUNKED, body=EMPTY_CHUNKED, version=b"1.0"), 400, True,
                 id="transfer-encoding-on-http-1.0"),
    pytest.param(post(field("Content-Length", b"5"), CHUNKED, body=EMPTY_CHUNKED,
                      version=b"1.0"), 400, True, id="both-framings-on-http-1.0"),
    pytest.param(get(b"X-A: 1\r\n  folded\r\n"), 400, True, id="obs-fold"),
    pytest.param(b"GET /api/a HTTP/1.1\nHost: p\n\n", 400, True, id="bare-lf"),
    pytest.param(b"GET /api/a HTTP/1.1\r\nHost: p\nX-A: b\r\n\r\n", 400, True,
                 id="bare-lf-in-head"),
    pytest.param(b"GET /api/a HTTP/1.1\r\nHost: p\rX-A: b\r\n\r\n", 400, True, id="bare-cr"),
    pytest.param(post(CHUNKED, body=b"FFFFFFFFFFFFFFFFF1\r\nabc\r\n" + EMPTY_CHUNKED), 400, True,
                 id="chunk-size-overflow"),
    pytest.param(post(CHUNKED, body=b"-1\r\nabc\r\n" + EMPTY_CHUNKED), 400, True,
                 id="chunk-size-negative"),
    pytest.param(post(CHUNKED, body=b"3x\r\nabc\r\n" + EMPTY_CHUNKED), 400, True,
                 id="chunk-size-not-hex"),
    pytest.param(post(CHUNKED, body=b"3 \r\nabc\r\n" + EMPTY_CHUNKED), 400, True,
                 id="chunk-size-trailing-space"),
    pytest.param(post(CHUNKED, body=b"3\r\nabcX" + EMPTY_CHUNKED), 400, True,
                 id="chunk-data-without-crlf"),
    pytest.param(post(CHUNKED, body=b'3;ext="a\nb"\r\nabc\r\n' + EMPTY_CHUNKED), 400, True,
                 id="chunk-extension-with-lf"),
]  # fmt: skip

OVERSIZED = [
    pytest.param(get(target=b"/" + b"a" * 9000), 414, True, id="request-line"),
    pytest.param(get(*(field(f"X-{i}", b"v") for i in range(101))), 431, True, id="header-count"),
    pytest.param(get(*(field(f"X-{i}", b"v" * 8000) for i in range(10))), 431, True,
                 id="headers-together"),
    pytest.param(get(field("X-Big", b"v" * 70000)), 431, True, id="one-header"),
    pytest.param(get(*(field(f"X-{i}", b"v" * 8000) for i in range(10)))[:-2], 431, True,
                 id="unfinished-head"),
    pytest.param(post(CLOSE, field("Content-Length", b"%d" % (200 * 1024 * 1024))), 413, None,
                 id="body-announced"),
]  # fmt: skip

NOT_HTTP = [
    pytest.param(b"G@T /api/a HTTP/1.1\r\nHost: p\r\n\r\n", 400, True, id="method-bad-char"),
    pytest.param(b"get /api/a HTTP/1.1\r\nHost: p\r\n\r\n", 400, True, id="method-lowercase"),
    pytest.param(b"FROB /api/a HTTP/1.1\r\nHost: p\r\n\r\n", 400, True, id="method-unknown"),
    pytest.param(b"CONNECT evil.example:443 HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n",
                 405, None, id="method-connect"),
    pytest.param(b"TRACE /api/a HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n", 405, None,
                 id="method-trace"),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, True, id="http2-preface"),
    pytest.param(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40, 400, True,
                 id="tls-client-hello"),
    pytest.param(get(CLOSE, version=b"2.0"), 505, None, id="version-2.0"),
    pytest.param(get(version=b"1.2"), 400, True, id="version-1.2"),
    pytest.param(b"GET /api/a HTTP/1.1\r\n\r\n", 400, True, id="no-host"),
    pytest.param(get(field("Host", b"q")), 400, True, id="two-hosts"),
    pytest.param(get(field("X-A", b"a\x00b")), 400, True, id="nul-in-value"),
    pytest.param(get(field("X-A", b"a\rb")), 400, True, id="cr-in-value"),
    pytest.param(get(b"X-A: a\nb: c\r\n"), 400, True, id="lf-in-value"),
    pytest.param(get(CLOSE, field("X-A", b"caf\xe9")), 400, None, id="value-not-utf8"),
    pytest.param(get(b"X A: b\r\n"), 400, True, id="space-in-name"),
    pytest.param(get(target=b"/api/a\x00b"), 400, True, id="nul-in-target"),
    pytest.param(get(target=b"/api/a b"), 400, True, id="space-in-target"),
]  # fmt: skip


@pytest.mark.parametrize(("request_bytes", "status", "closed"), SMUGGLING + OVERSIZED + NOT_HTTP)
async def test_a_hostile_request_gets_a_clean_answer_and_never_reaches_the_upstream(
    make_stack: MakeStack, request_bytes: bytes, status: int, closed: bool | None
) -> None:
    stack = await make_stack()
    async with held_open(stack.client.port, request_bytes) as reader:
        assert await normal_get(stack.client.port) == 200
        outcome = await read_outcome(reader, within=2, until_answered=not closed)
    assert outcome.status == status, outcome.answer[:300]
    assert outcome.problem["status"] == status
    if closed:
        assert outcome.closed
    assert [r.raw_path for r in stack.upstream.received] == ["/api/v1.0/normal"]
    assert await normal_get(stack.client.port) == 200


async def test_chunk_extensions_are_dropped_and_the_body_arrives_exactly(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    body = b"3;ext=1\r\nabc\r\n4;a=b;c\r\ndefg\r\n" + EMPTY_CHUNKED
    async with held_open(stack.client.port, post(CLOSE, CHUNKED, body=body)) as reader:
        outcome = await read_outcome(reader, within=2)
    assert outcome.status == 200
    (received,) = stack.upstream.received
    assert (received.method, received.body) == ("POST", b"abcdefg")


async def test_a_body_that_looks_like_a_request_stays_the_body(make_stack: MakeStack) -> None:
    stack = await make_stack()
    request = get(CLOSE, field("Content-Length", b"%d" % len(SMUGGLED))) + SMUGGLED
    async with held_open(stack.client.port, request) as reader:
        outcome = await read_outcome(reader, within=2)
    assert outcome.status == 200
    assert [(r.raw_path, r.body) for r in stack.upstream.received] == [("/api/a", SMUGGLED)]


async def test_an_upgrade_is_answered_as_a_plain_request_and_what_follows_is_http(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(max_header_bytes="4096")
    upgrade = get(field("Connection", b"Upgrade"), field("Upgrade", b"websocket"))
    async with held_open(stack.client.port, upgrade + b"x" * 5000) as reader:
        outcome = await read_outcome(reader, within=2)
    first, second = outcome.answer.split(b"HTTP/1.")[1:3]
    assert first.startswith(b"1 200 ")  # the upstream was asked without the Upgrade
    assert second.startswith(b"0 400 ")  # the bytes after it are no request
    assert outcome.closed
    (received,) = stack.upstream.received
    assert (received.raw_path, "Upgrade" in received.headers) == ("/api/a", False)


SLOW = [
    pytest.param(b"", get(CLOSE), id="head-one-byte-at-a-time"),
    pytest.param(post(field("Content-Length", b"50")), b"b" * 50, id="body-one-byte-at-a-time"),
]


@pytest.mark.parametrize(("at_once", "slowly"), SLOW)
async def test_a_slow_client_is_cut_with_408_and_others_are_served_meanwhile(
    make_stack: MakeStack, at_once: bytes, slowly: bytes
) -> None:
    stack = await make_stack(
        client_header_timeout_seconds="0.5",
        client_body_timeout_seconds="5",
        client_body_total_timeout_seconds="0.5",
    )
    slow = asyncio.create_task(
        trickle(stack.client.port, slowly, every=0.05, within=3, at_once=at_once)
    )
    assert await normal_get(stack.client.port) == 200
    outcome = await slow
    assert (outcome.status, outcome.closed) == (408, True)
    assert [r.raw_path for r in stack.upstream.received] == ["/api/v1.0/normal"]


@pytest.mark.parametrize(
    ("method", "version", "codings", "status"),
    [
        ("GET", (1, 1), [], None),
        ("POST", (1, 1), ["chunked"], None),
        ("POST", (1, 0), ["chunked"], 400),
        ("GET", (2, 0), [], 505),
        ("GET", (0, 9), [], 505),
        ("POST", (1, 1), ["gzip, chunked"], 501),
        ("TRACE", (1, 1), [], 405),
    ],
)
def test_the_refusal_rules_by_version_method_and_transfer_coding(
    method: str, version: tuple[int, int], codings: list[str], status: int | None
) -> None:
    refused = refusal(method, version, codings, [])
    if isinstance(refused, MalformedRequest):
        assert status == 400
    else:
        assert (refused.status if refused is not None else None) == status
