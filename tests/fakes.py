"""Fake SmartDocumentor parts for the tests: real aiohttp servers on loopback that record
what they received and can be told to fail. Nothing of the proxy's own is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import sys
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

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


TokenFault = Callable[["FakeTokenEndpoint", web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeTokenEndpoint:
    """``POST /connect/token``: issues ``token-1``, ``token-2``, … and records every request.

    ``failures`` is a list of what the next requests get instead of a token: an HTTP status
    with a JSON body, or the name of one of :data:`TOKEN_FAULTS`. ``fault``, a name from the
    same table, is what every request gets while it is set. With ``accepted_secret`` (or
    ``secret``) set, a form ``client_secret`` other than it gets ``invalid_client`` (for secret
    rotation). ``prefix`` names the tokens (``acme`` issues ``acme-1``), so that several
    endpoints' tokens can be told apart. An endpoint that is down is no fault of this object:
    close its server.
    """

    expires_in: object = 3600
    token_type: str = "Bearer"
    failures: list[tuple[int, dict[str, object]] | str] = field(default_factory=list)
    fault: str | None = None
    accepted_secret: str | None = None
    delay_seconds: float = 0.0
    slow_seconds: float = 2.0  # how long the "slow" fault takes to answer
    requests: list[TokenRequest] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    prefix: str = "token"
    secret: str | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.requests.append(TokenRequest(form, request.headers))
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        failure = self.failures.pop(0) if self.failures else self.fault
        if failure is None and self.accepted_secret not in (None, form.get("client_secret")):
            failure = "invalid_client"
        if isinstance(failure, tuple):
            return web.json_response(failure[1], status=failure[0])
        if self.secret is not None and form.get("client_secret") != self.secret:
            return web.json_response({"error": "invalid_client"}, status=400)
        if failure is not None:
            return await TOKEN_FAULTS[failure](self, request)
        return self.grant()

    def grant(self) -> web.Response:
        token = f"{self.prefix}-{len(self.issued) + 1}"
        self.issued.append(token)
        body: dict[str, object] = {"access_token": token, "token_type": self.token_type}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return web.json_response(body)


async def _token_500(endpoint: FakeTokenEndpoint, request: web.Request) -> web.StreamResponse:
    return web.json_response({"error": "server_error"}, status=500)


async def _token_html(endpoint: FakeTokenEndpoint, request: web.Request) -> web.StreamResponse:
    # What a misconfigured gateway in front of the endpoint serves, with a 200.
    page = "<html><head><title>Error</title></head><body><h1>Service unavailable</h1></body></html>"
    return web.Response(text=page, content_type="text/html")


async def _token_garbage(endpoint: FakeTokenEndpoint, request: web.Request) -> web.StreamResponse:
    return web.Response(body=b"\x00\xff\xfe{not json at all", content_type="application/json")


async def _token_truncated(endpoint: FakeTokenEndpoint, request: web.Request) -> web.StreamResponse:
    # A well-framed body holding half a JSON document.
    return web.Response(body=b'{"access_token": "tok', content_type="application/json")


async def _token_cut(endpoint: FakeTokenEndpoint, request: web.Request) -> web.StreamResponse:
    # The connection closes after half the announced body.
    body = b'{"access_token": "never-whole", "token_type": "Bearer", "expires_in": 3600}'
    response = web.StreamResponse(headers={"Content-Length": str(len(body))})
    response.content_type = "application/json"
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    _close(request)
    return response


async def _token_missing_fields(
    endpoint: FakeTokenEndpoint, request: web.Request
) -> web.StreamResponse:
    return web.json_response({"token_type": "Bearer", "expires_in": 3600})


async def _token_invalid_client(
    endpoint: FakeTokenEndpoint, request: web.Request
) -> web.StreamResponse:
    described = {"error": "invalid_client", "error_description": "Client secret has expired"}
    return web.json_response(described, status=400)


async def _token_slow(endpoint: FakeTokenEndpoint, request: web.Request) -> web.StreamResponse:
    # A token, but only after slow_seconds: later than any timeout the tests set.
    await asyncio.sleep(endpoint.slow_seconds)
    return endpoint.grant()


async def _token_closed(endpoint: FakeTokenEndpoint, request: web.Request) -> web.StreamResponse:
    # The request was read; the connection closes with no answer at all.
    _close(request)
    return web.Response()


async def _token_hang(endpoint: FakeTokenEndpoint, request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(3600)
    return endpoint.grant()


TOKEN_FAULTS: dict[str, TokenFault] = {
    "500": _token_500,
    "html": _token_html,
    "garbage": _token_garbage,
    "truncated": _token_truncated,
    "cut": _token_cut,
    "missing-fields": _token_missing_fields,
    "invalid_client": _token_invalid_client,
    "slow": _token_slow,
    "closed": _token_closed,
    "hang": _token_hang,
}


def _close(request: web.Request) -> None:
    """Close the connection under aiohttp's server, which then drops what it would send."""
    assert request.transport is not None
    request.transport.close()


@dataclass
class Received:
    method: str
    raw_path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    version: tuple[int, int]


Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


# What FakeUpstream.fault can be set to.
UPSTREAM_FAULTS = ("5xx", "slow", "reset", "stale", "idle-close")
IDLE_CLOSE_SECONDS = 0.02


@dataclass
class FakeUpstream:
    """The API: records every request; answers 401 to tokens in ``rejected``, else the
    ``responder`` (by default, 200 with a small JSON echo).

    While ``fault`` is set, every request is recorded and then answered by it instead: ``5xx``
    a 503 with ``Retry-After``; ``slow`` the usual answer after ``slow_seconds``; ``reset`` a
    200 whose connection is reset after part of its body; ``stale`` closes, unanswered, every
    connection that had already served a request (what a keep-alive connection the upstream
    has just timed out looks like to a client that reuses it); ``idle-close`` answers, then
    closes the connection once it has been idle for ``IDLE_CLOSE_SECONDS``, without having
    said ``Connection: close`` (an upstream with a very short idle timeout). ``cancelled``
    counts requests
    the upstream never finished answering because the other side went away. An upstream that
    is down is no fault of this object: close its server.
    """

    received: list[Received] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)
    responder: Responder | None = None
    cancelled: int = 0
    delays: dict[str, float] = field(default_factory=dict)  # path -> seconds before answering
    fault: str | None = None
    slow_seconds: float = 2.0
    _served: weakref.WeakSet[asyncio.BaseTransport] = field(
        default_factory=weakref.WeakSet, repr=False
    )

    @property
    def tokens_seen(self) -> list[str]:
        return [r.headers.get("Authorization", "").removeprefix("Bearer ") for r in self.received]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._answer(request)
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled += 1
            raise

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        reused = request.transport in self._served
        if request.transport is not None:
            self._served.add(request.transport)
        body = await request.read()
        self.received.append(
            Received(request.method, request.raw_path, request.headers, body, request.version)
        )
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        await asyncio.sleep(self.delays.get(request.path, 0))
        if self.fault is not None:
            return await self._fault(request, reused, body)
        if token in self.rejected:
            return web.json_response(
                {"title": "Unauthorized", "status": 401},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if self.responder is not None:
            return await self.responder(request)
        return web.json_response({"path": request.raw_path, "bytes": len(body)})

    async def _fault(self, request: web.Request, reused: bool, body: bytes) -> web.StreamResponse:
        if self.fault == "5xx":
            unavailable = {"title": "Service Unavailable", "status": 503}
            return web.json_response(unavailable, status=503, headers={"Retry-After": "1"})
        if self.fault == "slow":
            await asyncio.sleep(self.slow_seconds)
            return web.json_response({"path": request.raw_path, "bytes": len(body)})
        if self.fault == "reset":
            response = web.StreamResponse(headers={"Content-Length": "100000"})
            await response.prepare(request)
            await response.write(b"x" * 1000)
            assert request.transport is not None
            request.transport.abort()
            return response
        assert self.fault in ("stale", "idle-close"), self.fault
        if self.fault == "idle-close":
            assert request.transport is not None
            asyncio.get_running_loop().call_later(IDLE_CLOSE_SECONDS, request.transport.close)
        elif reused:
            _close(request)
            return web.Response()
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


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a process a test starts: PATH, what the test adds, and coverage's
    own settings (``patch = ["subprocess"]`` in pyproject.toml), so that the code that runs
    in the child, a worker of a worker included, is measured too."""
    measured = {key: value for key, value in os.environ.items() if key.startswith("COVERAGE_")}
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **measured, **extra}


def _ephemeral_ports() -> range:
    """The range the kernel picks from for ``bind(port 0)`` and for outgoing connections."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now, for a server started in another process.

    It is chosen outside the kernel's ephemeral range: a port from ``bind(0)`` is free only
    until the kernel hands it to the next ``bind(0)`` or outgoing connection (a fake server or
    the proxy's own token request), which made "Address already in use" a rare CI failure."""
    ephemeral = _ephemeral_ports()
    candidates = [p for p in range(20000, 32768) if p not in ephemeral and p not in _HANDED_OUT]
    for port in random.sample(candidates, len(candidates)):
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port outside the ephemeral range")


@contextlib.asynccontextmanager
async def proxy_command(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m proxy ARGS`` as a real process with a clean environment and stdout piped;
    killed at the end if it is still running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env=child_env(),
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
