"""A client that goes away in the middle: of its upload, or of its download. The proxy's
upstream request ends with it (the upstream never gets the rest, nor finishes sending), the
proxy serves the next client as before, and nothing leaks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest
from aiohttp import web

from tests.conftest import MakeStack, Stack
from tests.faults import WAIT_SECONDS, forget, traffic, until_token_fetches
from tests.leaks import assert_nothing_leaked, measure, tracing

CHUNK = b"x" * 65536
DISCONNECTS = 10  # clients that leave, one after the other
UPLOAD_BYTES = 8 * 1024 * 1024  # announced; a client sends a fraction of it, then leaves
SENT_BEFORE_LEAVING = 256 * 1024
DOWNLOAD_BYTES = 256 * 1024 * 1024  # far more than every socket buffer on the way can hold
READ_BEFORE_LEAVING = 256 * 1024


async def _until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not condition():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.01)


async def _leave_mid_upload(stack: Stack, path: str, announced: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", stack.client.port)
    head = f"PUT {path} HTTP/1.1\r\nHost: p\r\nContent-Length: {announced}\r\n\r\n"
    writer.write(head.encode())
    for _ in range(SENT_BEFORE_LEAVING // len(CHUNK)):
        writer.write(CHUNK)
        await writer.drain()
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


@pytest.mark.parametrize(
    ("replay_limit_bytes", "announced"),
    [(1024, UPLOAD_BYTES), (UPLOAD_BYTES, UPLOAD_BYTES)],
    ids=["streamed", "buffered"],
)
async def test_a_client_leaving_mid_upload_ends_the_upstream_request(
    make_stack: MakeStack, replay_limit_bytes: int, announced: int
) -> None:
    stack = await make_stack(replay_limit_bytes=str(replay_limit_bytes))
    assert {answer.status for answer in await traffic(stack, 10)} == {200}
    forget(stack)
    with tracing():
        before = measure()
        for left in range(1, DISCONNECTS + 1):
            await _leave_mid_upload(stack, "/upload", announced)
            if replay_limit_bytes < announced:
                # Streamed: the upstream was receiving it, and its request was cut off.
                await _until(lambda n=left: stack.upstream.cancelled == n, "upstream not cancelled")
        await asyncio.sleep(0.1)
        assert stack.upstream.received == []  # no upload arrived whole, none was answered
        if replay_limit_bytes >= announced:
            # Buffered: nothing is sent before the whole body is in hand.
            assert stack.upstream.cancelled == 0
        assert {answer.status for answer in await traffic(stack, 10)} == {200}
        await until_token_fetches(stack, 1)  # a client leaving costs no token
        forget(stack)
        await assert_nothing_leaked(before)


class Download:
    """An upstream answer of ``size`` bytes, written a chunk at a time; counts the answers
    written to the end."""

    def __init__(self, size: int) -> None:
        self.size, self.finished, self.started = size, 0, 0

    async def respond(self, request: web.Request) -> web.StreamResponse:
        if request.path != "/download":
            return web.json_response({"ok": True})
        self.started += 1
        response = web.StreamResponse(headers={"Content-Length": str(self.size)})
        await response.prepare(request)
        for _ in range(self.size // len(CHUNK)):
            await response.write(CHUNK)
        await response.write_eof()
        self.finished += 1
        return response


async def _leave_mid_download(stack: Stack) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.client.port)
    writer.write(b"GET /download HTTP/1.1\r\nHost: p\r\n\r\n")
    received = 0
    while received < READ_BEFORE_LEAVING:
        chunk = await asyncio.wait_for(reader.read(65536), WAIT_SECONDS)
        assert chunk, "the proxy closed the download early"
        received += len(chunk)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return received


async def test_a_client_leaving_mid_download_ends_the_upstream_answer(
    make_stack: MakeStack,
) -> None:
    download = Download(DOWNLOAD_BYTES)
    stack = await make_stack()
    stack.upstream.responder = download.respond
    assert {answer.status for answer in await traffic(stack, 10)} == {200}
    forget(stack)
    with tracing():
        before = measure()
        for left in range(1, DISCONNECTS + 1):
            await _leave_mid_download(stack)
            await _until(lambda n=left: stack.upstream.cancelled == n, "upstream not cancelled")
        assert (download.started, download.finished) == (DISCONNECTS, 0)
        assert {answer.status for answer in await traffic(stack, 10)} == {200}
        await until_token_fetches(stack, 1)  # a client leaving costs no token
        forget(stack)
        await assert_nothing_leaked(before)
