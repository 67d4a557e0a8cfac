"""What the fault tests share: traffic through the proxy on connections that close after each
answer (so that the test's own connections never look like a leak), the proxy's count of token
requests, and a way to bring a fake that was taken down back on the same port."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy

from proxy.keys import INSPECTOR
from tests.conftest import Stack
from tests.fakes import json_of

WAIT_SECONDS = 5.0
StartServer = Callable[..., Awaitable[TestServer]]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    cut: bool = False  # the connection closed before the whole body arrived

    @property
    def problem(self) -> dict[str, object]:
        assert self.headers.get("Content-Type", "").startswith("application/problem+json"), self
        return json_of(self.body)


async def traffic(
    stack: Stack,
    count: int,
    *,
    concurrency: int = 10,
    method: str = "GET",
    path: str = "/api/x",
    data: bytes | None = None,
) -> list[Answer]:
    """``count`` requests through the proxy, ``concurrency`` at a time; every answer."""
    url = stack.client.make_url(path)
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> Answer:
            async with gate, session.request(method, url, data=data) as response:
                try:
                    return Answer(response.status, response.headers, await response.read())
                except aiohttp.ClientPayloadError:
                    return Answer(response.status, response.headers, b"", cut=True)

        return await asyncio.gather(*(one() for _ in range(count)))


async def token_fetches(stack: Stack) -> int:
    """Token requests the proxy has made, whatever their outcome (its own metric)."""
    # Not through stack.client: aiohttp's TestClient keeps every response it has returned.
    async with (
        aiohttp.ClientSession() as session,
        session.get(stack.client.make_url("/_proxy/metrics")) as response,
    ):
        text = await response.text()
    found = re.findall(r'^smartdoc_proxy_token_fetches_total\{outcome="\w+"\} (\S+)$', text, re.M)
    return sum(int(float(value)) for value in found)


async def until_token_fetches(stack: Stack, count: int) -> None:
    """Wait until the proxy has finished ``count`` token requests; fail if it makes more."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while (made := await token_fetches(stack)) < count:
        assert loop.time() < deadline, f"{made} token requests, never {count}"
        await asyncio.sleep(0.02)
    assert made == count, f"{made} token requests, not {count}"


async def take_down(server: TestServer) -> int:
    """Close ``server`` and every connection to it; the port it listened on."""
    port = server.port
    assert port is not None
    await server.close()
    return port


async def bring_back(start: StartServer, app: web.Application, port: int) -> TestServer:
    """``app`` served again on the port a server that was taken down listened on."""
    return await asyncio.wait_for(start(app, port=port), WAIT_SECONDS)


def forget(stack: Stack) -> None:
    """Drop what the fakes recorded, and what the inspector keeps: they keep requests on
    purpose (the inspector its last 200, bounded), which a memory measurement would take for
    a leak. Assert on the records first."""
    stack.upstream.received.clear()
    stack.endpoint.requests.clear()
    stack.client.app[INSPECTOR]._snapshots.clear()
