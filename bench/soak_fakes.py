"""The soak's fakes, served on 127.0.0.1 from the soak's own process: a token endpoint that
issues short-lived tokens, and an upstream that accepts only those tokens while they are valid.
Both take faults that can be switched on and off, and the upstream records which request (by
its ``X-Soak-Id``) each fault was injected into, so that the soak can tell an error it caused
from a real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import secrets
import weakref
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

ID_HEADER = "X-Soak-Id"
INJECTED_HEADER = "X-Soak-Injected"
KEY_HEADER = "X-Proxy-Key"
TOKEN_FAULTS = ("500", "slow", "html")
UPSTREAM_FAULTS = ("5xx", "slow", "reset", "close")
BLOCK = 65536


def pattern(seed: str, size: int) -> bytes:
    """The download body for a seed: the same bytes on both sides, for checking."""
    block = hashlib.sha256(seed.encode()).digest() * (BLOCK // 32)
    return (block * (size // BLOCK + 1))[:size]


@dataclass
class TokenEndpoint:
    """``POST /connect/token``. ``fault``: ``500``; ``slow`` (answers after ``slow_seconds``,
    longer than the proxy waits); ``html`` (a 200 that is an error page)."""

    lifetime_seconds: float
    slow_seconds: float = 3.0
    fault: str | None = None
    requests: int = 0
    faulted: int = 0
    expiry: dict[str, float] = field(default_factory=dict)  # token -> loop time it expires

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        await request.post()
        fault = self.fault
        if fault is not None:
            self.faulted += 1
        if fault == "500":
            return web.json_response({"error": "server_error"}, status=500)
        if fault == "html":
            return web.Response(text="<html><h1>Bad gateway</h1></html>", content_type="text/html")
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds)
        token = secrets.token_urlsafe(16)
        now = asyncio.get_running_loop().time()
        self.expiry = {t: at for t, at in self.expiry.items() if at > now}
        self.expiry[token] = now + self.lifetime_seconds
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime_seconds}
        return web.json_response(body)

    def valid(self, token: str) -> bool:
        return asyncio.get_running_loop().time() < self.expiry.get(token, 0.0)


@dataclass
class Upstream:
    """The API. While ``fault`` is on, it hits a ``share`` of the requests: ``5xx`` answers 503
    (marked with ``X-Soak-Injected``); ``slow`` answers after ``slow_seconds``, later than the
    proxy waits; ``reset`` resets the connection halfway through the answer; ``close`` closes,
    unanswered, a keep-alive connection as it is reused. Answers 401 to any token the endpoint
    did not issue or that has expired, and counts them: the proxy must never send one."""

    tokens: TokenEndpoint
    rng: random.Random
    share: float = 0.25
    slow_seconds: float = 3.0
    fault: str | None = None
    requests: int = 0
    rejected: int = 0
    key_leaked: int = 0  # requests that arrived still carrying the client's proxy key
    injected: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    seen: Counter[str] = field(default_factory=Counter)  # request id -> times it arrived
    _served: weakref.WeakSet[asyncio.BaseTransport] = field(default_factory=weakref.WeakSet)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._arrived])
        app.router.add_put("/upload", self.upload)
        app.router.add_get("/download/{size}", self.download)
        app.router.add_route("*", "/api/{path:.*}", self.api)
        return app

    @web.middleware
    async def _arrived(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.seen[request.headers.get(ID_HEADER, "")] += 1
        return await handler(request)

    async def api(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        refused = self._refused(request)
        return refused or await self._answer(request, {"path": request.path, "bytes": len(body)})

    async def upload(self, request: web.Request) -> web.StreamResponse:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        refused = self._refused(request)
        answer = {"sha256": digest.hexdigest(), "bytes": size}
        return refused or await self._answer(request, answer)

    async def download(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = pattern(request.query.get("seed", ""), int(request.match_info["size"]))
        return await self._answer(request, None, body)

    def _refused(self, request: web.Request) -> web.StreamResponse | None:
        self.requests += 1
        if KEY_HEADER in request.headers:
            self.key_leaked += 1
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.tokens.valid(token):
            return None
        self.rejected += 1
        return web.json_response(
            {"status": 401}, status=401, headers={"WWW-Authenticate": "Bearer"}
        )

    async def _answer(
        self, request: web.Request, data: object, body: bytes | None = None
    ) -> web.StreamResponse:
        reused = request.transport in self._served
        if request.transport is not None:
            self._served.add(request.transport)
        fault = self._pick(reused)
        if fault is not None:
            self.injected[request.headers.get(ID_HEADER, "")].add(fault)
        if fault == "5xx":
            marked = {INJECTED_HEADER: "5xx", "Retry-After": "1"}
            return web.json_response({"status": 503}, status=503, headers=marked)
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds)
        if fault == "close" and request.transport is not None:
            request.transport.close()
            return web.Response()
        if body is None:
            body = web.json_response(data).body
            assert isinstance(body, bytes)
        return await self._send(request, body, cut=fault == "reset")

    def _pick(self, reused: bool) -> str | None:
        fault = self.fault
        if fault is None or self.rng.random() >= self.share:
            return None
        return None if fault == "close" and not reused else fault

    async def _send(self, request: web.Request, body: bytes, *, cut: bool) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(body))})
        response.content_type = "application/json"
        await response.prepare(request)
        end = len(body) // 2 if cut else len(body)
        for start in range(0, end, BLOCK):
            await response.write(body[start : min(start + BLOCK, end)])
        if cut and request.transport is not None:
            request.transport.abort()
            return response
        await response.write_eof()
        return response


@contextlib.asynccontextmanager
async def serving(tokens: TokenEndpoint, upstream: Upstream) -> AsyncIterator[tuple[int, int]]:
    """Both fakes on 127.0.0.1 (free ports); yields ``(token_port, upstream_port)``."""
    token_app = web.Application()
    token_app.router.add_post("/connect/token", tokens.handle)
    runners = [
        web.AppRunner(app, handler_cancellation=True, access_log=None)
        for app in (token_app, upstream.app())
    ]
    ports = []
    try:
        for runner in runners:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            ports.append(runner.addresses[0][1])
        yield ports[0], ports[1]
    finally:
        for runner in runners:
            await runner.cleanup()
