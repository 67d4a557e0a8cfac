"""Fake SmartDocumentor parts for the tests: real aiohttp servers on loopback that record
what they received and can be told to fail. Nothing of the proxy's own is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDictProxy

SECRET = "s3cret-Value-never-logged"
CLIENT_ID = "org-client"


class FakeClock:
    """A monotonic clock that moves only when told to, with a :meth:`sleep` that ends when
    the clock has moved far enough."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._moved = asyncio.Event()
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._moved.set()
        self._moved = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        until = self.now + seconds
        while self.now < until:
            await self._moved.wait()


@dataclass
class TokenRequest:
    form: dict[str, str]
    headers: CIMultiDictProxy[str]


@dataclass
class FakeTokenEndpoint:
    """``POST /connect/token``: issues ``token-1``, ``token-2``, … and records every request.

    ``failures`` is a list of what the next requests get instead of a token: an HTTP status
    with a JSON body, or ``"hang"``. ``prefix`` names the tokens (``acme`` issues ``acme-1``),
    so that several endpoints' tokens can be told apart; with ``secret`` set, any other
    ``client_secret`` gets ``400 invalid_client``.
    """

    expires_in: object = 3600
    token_type: str = "Bearer"
    failures: list[tuple[int, dict[str, object]] | str] = field(default_factory=list)
    delay_seconds: float = 0.0
    requests: list[TokenRequest] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    prefix: str = "token"
    secret: str | None = None

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.requests.append(TokenRequest(form, request.headers))
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.failures:
            failure = self.failures.pop(0)
            if failure == "hang":
                await asyncio.sleep(3600)
            assert isinstance(failure, tuple)
            return web.json_response(failure[1], status=failure[0])
        if self.secret is not None and form.get("client_secret") != self.secret:
            return web.json_response({"error": "invalid_client"}, status=400)
        token = f"{self.prefix}-{len(self.issued) + 1}"
        self.issued.append(token)
        body: dict[str, object] = {"access_token": token, "token_type": self.token_type}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return web.json_response(body)


@dataclass
class Received:
    method: str
    raw_path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    version: tuple[int, int]


Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeUpstream:
    """The API: records every request; answers 401 to tokens in ``rejected``, else the
    ``responder`` (by default, 200 with a small JSON echo)."""

    received: list[Received] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)
    responder: Responder | None = None
    cancelled: int = 0
    delays: dict[str, float] = field(default_factory=dict)  # path -> seconds before answering

    @property
    def tokens_seen(self) -> list[str]:
        return [r.headers.get("Authorization", "").removeprefix("Bearer ") for r in self.received]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(
            Received(request.method, request.raw_path, request.headers, body, request.version)
        )
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        await asyncio.sleep(self.delays.get(request.path, 0))
        if token in self.rejected:
            return web.json_response(
                {"title": "Unauthorized", "status": 401},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if self.responder is not None:
            try:
                return await self.responder(request)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return web.json_response({"path": request.raw_path, "bytes": len(body)})


def token_app(endpoint: FakeTokenEndpoint) -> web.Application:
    app = web.Application()
    app.router.add_post("/connect/token", endpoint.handle)
    return app


def upstream_app(upstream: FakeUpstream) -> web.Application:
    app = web.Application(client_max_size=1024**3)
    # [\s\S]: a path with a %0A in it is a path like any other.
    app.router.add_route("*", r"/{path:[\s\S]*}", upstream.handle)
    return app


def json_of(body: bytes) -> dict[str, object]:
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


async def raw_exchange(port: int, request: bytes, *, read_until_close: bool = True) -> bytes:
    """Send bytes as they are on a fresh connection and return everything the server says.

    For what a client library would tidy up first: dot segments, HTTP/1.0, Expect.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(-1), 10)
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def raw_upstream(answer: bytes) -> AsyncIterator[tuple[int, list[bytes]]]:
    """An upstream that answers every connection with exactly ``answer``, headers included,
    and records the head of each request: for what aiohttp's server would add on its own."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], heads
    finally:
        server.close()
        await server.wait_closed()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now, for a server started in another process."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def proxy_command(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m proxy ARGS`` as a real process with a clean environment and stdout piped;
    killed at the end if it is still running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
