"""The soak's clients: mixed requests through the proxy, every answer checked (bodies byte for
byte) and classified as a success, an error that a fault injected into that very request (or a
token-endpoint fault around that time) explains, a download the client abandoned on purpose, or
an error outside the injected faults.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import aiohttp
from soak_fakes import ID_HEADER, INJECTED_HEADER, KEY_HEADER, Upstream, pattern

KINDS = ("json-get", "json-post", "upload", "download")
WEIGHTS = (50, 25, 10, 15)
MAX_THINK_SECONDS = 0.05
ERROR_PAUSE_SECONDS = 0.5
REQUEST_TIMEOUT_SECONDS = 30
UPLOAD_BYTES = (64 * 1024, 2 * 1024 * 1024)  # some above the proxy's 1 MiB replay limit
DOWNLOAD_BYTES = (64 * 1024, 4 * 1024 * 1024)
ABANDON_AFTER_BYTES = 64 * 1024
PROBLEM_TYPE = "urn:smartdoc-proxy:problem:"
EXAMPLES = 20

Sending = AbstractAsyncContextManager[aiohttp.ClientResponse]
Check = Callable[[dict[str, object]], bool]


@dataclass(frozen=True)
class Window:
    """A fault switched on from ``start`` to ``end`` (loop time)."""

    kind: str  # "token-500", "upstream-reset", "client-abort", ...
    start: float
    end: float

    def near(self, started: float, ended: float) -> bool:
        """Could this token fault explain a token failure of a request in that interval? Its
        effect lasts past its end by at most the backoff it built up (no longer than itself)."""
        tail = min(60.0, self.end - self.start) + 2.0
        return self.kind.startswith("token-") and self.start <= ended and started <= self.end + tail


@dataclass(frozen=True)
class Outcome:
    status: int | None = None  # None: no answer at all
    problem: str = ""  # the slug of the proxy's own problem answer
    detail: str = ""
    injected: str = ""  # X-Soak-Injected of the answer
    cut: bool = False
    correct: bool = False
    abandoned: bool = False
    error: str = ""  # what went wrong when there was no answer


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    abandoned: int = 0
    expected: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0
    examples: list[str] = field(default_factory=list)
    bytes_up: int = 0
    bytes_down: int = 0


def explained_by(
    outcome: Outcome, injected: set[str], windows: list[Window], started: float, ended: float
) -> str | None:
    """The injected fault that explains an unsuccessful outcome, or ``None``. ``injected``:
    what the upstream injected into this very request."""
    if outcome.status == 503 and outcome.injected == "5xx" and "5xx" in injected:
        return "upstream-5xx"
    if outcome.status == 504 and outcome.problem == "upstream-timeout" and "slow" in injected:
        return "upstream-slow"
    if outcome.cut and "reset" in injected:
        return "upstream-reset"
    if outcome.status == 502 and outcome.problem == "upstream-unreachable":
        # A reset before the status line, or a keep-alive connection closed as it was reused:
        # a POST says it may have been processed; a GET was sent again and met a fault again.
        told = ("may have been processed", "on a new connection too")
        if any(words in outcome.detail for words in told):
            return next((f"upstream-{f}" for f in ("close", "reset") if f in injected), None)
    if outcome.status == 503 and outcome.problem == "token-unavailable":
        return next((w.kind for w in windows if w.near(started, ended)), None)
    return None


@dataclass
class Traffic:
    """Clients sending mixed requests through the proxy at ``base`` until a deadline."""

    base: str
    upstream: Upstream
    windows: list[Window]
    rng: random.Random
    keys: list[str]
    tally: Tally = field(default_factory=Tally)

    async def client(self, number: int, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        headers = {KEY_HEADER: self.keys[number % len(self.keys)]} if self.keys else {}
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            sequence = 0
            while loop.time() < deadline:
                kind = self.rng.choices(KINDS, WEIGHTS)[0]
                request_id, started = f"{number}-{sequence}", loop.time()
                outcome = await self.one(session, kind, request_id, started)
                self.record(kind, request_id, outcome, started, loop.time())
                sequence += 1
                # After a failure, a client waits a little before its next request, as real
                # ones do (the proxy's 503s say Retry-After).
                pause = MAX_THINK_SECONDS if outcome.correct else ERROR_PAUSE_SECONDS
                await asyncio.sleep(self.rng.uniform(0, pause))

    async def one(
        self, session: aiohttp.ClientSession, kind: str, request_id: str, started: float
    ) -> Outcome:
        headers = {ID_HEADER: request_id}
        try:
            if kind == "json-get":
                url = f"{self.base}/api/v1.0/external/sdtask/status?taskId={request_id}"
                return await self._json(session.get(url, headers=headers), "path")
            if kind == "json-post":
                url = f"{self.base}/api/v1.0/external/sdtask/process"
                task = {"displayName": request_id, "context": {"url": "https://example.test/a"}}
                return await self._json(session.post(url, json=task, headers=headers), "path")
            if kind == "upload":
                return await self._upload(session, headers)
            return await self._download(session, headers, request_id, self._abandoning(started))
        except aiohttp.ClientPayloadError:
            return Outcome(cut=True)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}")

    async def _json(self, sending: Sending, key: str) -> Outcome:
        async with sending as response:
            body = await response.read()
            return self._checked(response, body, lambda data: key in data)

    async def _upload(self, session: aiohttp.ClientSession, headers: dict[str, str]) -> Outcome:
        body = self.rng.randbytes(self.rng.randint(*UPLOAD_BYTES))
        digest = hashlib.sha256(body).hexdigest()
        self.tally.bytes_up += len(body)
        async with session.put(f"{self.base}/upload", data=body, headers=headers) as response:
            answer = await response.read()
            return self._checked(response, answer, lambda data: data.get("sha256") == digest)

    async def _download(
        self, session: aiohttp.ClientSession, headers: dict[str, str], seed: str, abandon: bool
    ) -> Outcome:
        size = self.rng.randint(*DOWNLOAD_BYTES)
        url = f"{self.base}/download/{size}?seed={seed}"
        async with session.get(url, headers=headers) as response:
            if response.status != 200:
                return self._checked(response, await response.read(), lambda data: False)
            digest, received = hashlib.sha256(), 0
            async for chunk in response.content.iter_any():
                digest.update(chunk)
                received += len(chunk)
                if abandon and received >= ABANDON_AFTER_BYTES:
                    response.close()  # the client leaves mid-download, on purpose
                    return Outcome(status=200, abandoned=True)
            self.tally.bytes_down += received
            correct = digest.digest() == hashlib.sha256(pattern(seed, size)).digest()
            return Outcome(status=200, correct=correct)

    def _abandoning(self, started: float) -> bool:
        active = any(w.kind == "client-abort" and w.start <= started < w.end for w in self.windows)
        return active and self.rng.random() < 0.5

    def _checked(self, response: aiohttp.ClientResponse, body: bytes, good: Check) -> Outcome:
        injected = response.headers.get(INJECTED_HEADER, "")
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        problem = str(data.get("type", "")).removeprefix(PROBLEM_TYPE)
        correct = response.status == 200 and bool(good(data))
        return Outcome(
            response.status, problem, str(data.get("detail", "")), injected, correct=correct
        )

    def record(
        self, kind: str, request_id: str, outcome: Outcome, started: float, ended: float
    ) -> None:
        tally = self.tally
        tally.requests[kind] += 1
        arrived = self.upstream.seen[request_id]
        if outcome.abandoned:
            tally.abandoned += 1
        elif outcome.correct and (kind != "json-post" or arrived == 1):
            tally.ok += 1  # and a POST reached the upstream once: never sent twice
        elif fault := explained_by(
            outcome, self.upstream.injected.get(request_id, set()), self.windows, started, ended
        ):
            tally.expected[fault] += 1
        else:
            tally.unexpected += 1
            if len(tally.examples) < EXAMPLES:
                faults = ",".join(sorted(self.upstream.injected.get(request_id, ()))) or "none"
                tally.examples.append(
                    f"{kind} {request_id} (reached the upstream {arrived}x, injected: "
                    f"{faults}): {outcome}"
                )
