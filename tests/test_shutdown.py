"""``smartdoc-proxy run`` as a real process: graceful shutdown on SIGTERM and SIGINT, the bound
on how long a slow request can hold the exit, and the warning for a non-loopback address."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.fakes import (
    SECRET,
    FakeTokenEndpoint,
    FakeUpstream,
    Responder,
    child_env,
    free_port,
    json_of,
    token_app,
    upstream_app,
)

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_SECONDS = 8.0
SLOW_PATH = "/api/v1.0/external/sdworkspace/CurrentWorkspaces"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (the non-loopback address under test)


@dataclass
class Fakes:
    upstream: FakeUpstream
    upstream_url: str
    token_url: str


@dataclass
class Proxy:
    """The proxy's process, and what it printed once it has exited."""

    process: asyncio.subprocess.Process
    port: int
    out: str = ""
    err: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def exited(self, within_seconds: float) -> int:
        """Wait for the exit; its status. Collects stdout and stderr."""
        out, err = await asyncio.wait_for(self.process.communicate(), within_seconds)
        self.out, self.err = self.out + out.decode(), self.err + err.decode()
        assert self.process.returncode is not None
        return self.process.returncode


@pytest.fixture
async def fakes(aiohttp_server, endpoint: FakeTokenEndpoint, upstream: FakeUpstream) -> Fakes:  # type: ignore[no-untyped-def]
    token_server = await aiohttp_server(token_app(endpoint))
    upstream_server = await aiohttp_server(upstream_app(upstream))
    return Fakes(
        upstream,
        str(upstream_server.make_url("/")).rstrip("/"),
        str(token_server.make_url("/connect/token")),
    )


@contextlib.asynccontextmanager
async def running_proxy(
    fakes: Fakes, *flags: str, listen_host: str = "127.0.0.1"
) -> AsyncIterator[Proxy]:
    """``python -m proxy run`` in front of the fakes, answering /_proxy/healthz; killed at the
    end whatever happens."""
    port = free_port(listen_host)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "run",
        "--listen",
        f"{listen_host}:{port}",
        "--upstream",
        fakes.upstream_url,
        "--token-url",
        fakes.token_url,
        "--client-id",
        "x",
        *flags,
        env=child_env(SMARTDOC_CLIENT_SECRET=SECRET),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    proxy = Proxy(process, port)
    try:
        await wait_until_healthy(proxy)
        yield proxy
    finally:
        if process.returncode is None:
            process.kill()
        await proxy.exited(within_seconds=5)


async def wait_until_healthy(proxy: Proxy) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_SECONDS
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        while True:
            if proxy.process.returncode is not None:
                await proxy.exited(within_seconds=5)
                pytest.fail(f"the proxy exited with {proxy.process.returncode}: {proxy.err}")
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(proxy.url + "/_proxy/healthz") as response:
                    if response.status == 200:
                        return
            assert loop.time() < deadline, "the proxy never answered /_proxy/healthz"
            await asyncio.sleep(0.05)


async def get(url: str) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.get(url) as response,
    ):
        return response.status, await response.read()


@contextlib.asynccontextmanager
async def in_flight(
    upstream: FakeUpstream, url: str
) -> AsyncIterator[asyncio.Task[tuple[int, bytes]]]:
    """A request through the proxy, once the upstream has it; cancelled at the end if still
    running, so that a failed test leaves no task behind."""
    request = asyncio.create_task(get(url))
    try:
        for _ in range(200):
            if upstream.received:
                break
            assert not request.done(), request.result()
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the request never reached the upstream")
        yield request
    finally:
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)


async def refuses_connections(port: int, within: float) -> bool:
    """Whether new connections to the port are refused within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            # Caught in the listen backlog as the socket closed: try again for a clear answer.
            pass
        else:
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.02)
    return False


def slow_responder(seconds: float, release: asyncio.Event) -> Responder:
    """An upstream answer that takes ``seconds``, or until ``release`` is set."""

    async def respond(request: web.Request) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), seconds)
        return web.json_response({"slow": "done"})

    return respond


@contextlib.asynccontextmanager
async def slow_request_at(
    fakes: Fakes, grace: str, seconds: float
) -> AsyncIterator[tuple[Proxy, asyncio.Task[tuple[int, bytes]]]]:
    """The proxy with ``--shutdown-grace-seconds grace``, and one request through it whose
    upstream answer takes ``seconds`` (released at the end, whatever happens)."""
    release = asyncio.Event()
    fakes.upstream.responder = slow_responder(seconds, release)
    try:
        async with (
            running_proxy(fakes, "--shutdown-grace-seconds", grace) as proxy,
            in_flight(fakes.upstream, proxy.url + SLOW_PATH) as request,
        ):
            yield proxy, request
    finally:
        release.set()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_lets_the_request_in_flight_finish_refuses_new_ones_and_exits_0(
    fakes: Fakes, signum: signal.Signals
) -> None:
    async with slow_request_at(fakes, "5", 1.0) as (proxy, request):
        proxy.process.send_signal(signum)

        assert await refuses_connections(proxy.port, within=0.7)
        assert not request.done(), "the request ended before its upstream answered"
        status, body = await asyncio.wait_for(request, 5)
        assert (status, body) == (200, b'{"slow": "done"}')
        assert await proxy.exited(within_seconds=5) == 0
        assert "Traceback" not in proxy.err
    assert len(fakes.upstream.received) == 1
    assert fakes.upstream.cancelled == 0


async def test_a_request_slower_than_the_grace_period_does_not_hold_the_exit(
    fakes: Fakes,
) -> None:
    async with slow_request_at(fakes, "0.5", 5.0) as (proxy, _):
        loop = asyncio.get_running_loop()
        signalled = loop.time()

        proxy.process.send_signal(signal.SIGTERM)

        # A liveness bound (0.5 s grace + slack to wind down), not a performance claim.
        status = await proxy.exited(within_seconds=4)
        assert loop.time() - signalled < 4
        assert status == 0


async def test_a_request_slower_than_the_grace_is_cut_at_the_grace_not_at_twice_it(
    fakes: Fakes,
) -> None:
    # aiohttp waits its shutdown timeout for a handler, then as long again once it has
    # cancelled the request: the grace must be the whole wait.
    async with slow_request_at(fakes, "2", 10.0) as (proxy, request):
        loop = asyncio.get_running_loop()
        signalled = loop.time()
        proxy.process.send_signal(signal.SIGTERM)
        assert await proxy.exited(within_seconds=8) == 0
        waited = loop.time() - signalled
        # A bound on what the grace means (2 s, plus slack to wind down), not speed.
        assert 1.9 <= waited < 3.4, waited
        with contextlib.suppress(aiohttp.ClientError):
            await request


async def test_listening_on_a_non_loopback_address_warns_at_start_up(fakes: Fakes) -> None:
    # --insecure-open: without an allow-list or keys it would refuse to start at all.
    async with running_proxy(fakes, "--insecure-open", listen_host=ALL_INTERFACES) as proxy:
        proxy.process.send_signal(signal.SIGTERM)
        assert await proxy.exited(within_seconds=5) == 0

    warnings = [line for line in proxy.err.splitlines() if "WARNING" in line]
    assert any("loopback" in line and ALL_INTERFACES in line for line in warnings), proxy.err


async def test_listening_on_loopback_gives_no_such_warning(fakes: Fakes) -> None:
    async with running_proxy(fakes) as proxy:
        proxy.process.send_signal(signal.SIGTERM)
        assert await proxy.exited(within_seconds=5) == 0

    assert "loopback" not in proxy.err
    assert "listening on http://127.0.0.1:" in proxy.err


async def test_a_grace_of_zero_does_not_wait_for_requests_in_flight(fakes: Fakes) -> None:
    async with slow_request_at(fakes, "0", 5.0) as (proxy, _):
        proxy.process.send_signal(signal.SIGTERM)
        # aiohttp would read 0 as "no limit" and wait the full 5 s.
        assert await proxy.exited(within_seconds=3) == 0


async def test_in_the_real_process_a_client_leaving_cancels_its_upstream_request(
    fakes: Fakes,
) -> None:
    release = asyncio.Event()
    fakes.upstream.responder = slow_responder(5.0, release)
    try:
        async with running_proxy(fakes) as proxy:
            async with in_flight(fakes.upstream, proxy.url + SLOW_PATH):
                pass  # leaving the block cancels the client's request mid-flight
            for _ in range(100):
                if fakes.upstream.cancelled:
                    break
                await asyncio.sleep(0.02)
            assert fakes.upstream.cancelled == 1
    finally:
        release.set()


async def _slow_body(chunks: int, each: int, pause: float) -> AsyncIterator[bytes]:
    for _ in range(chunks):
        yield b"u" * each
        await asyncio.sleep(pause)


async def test_an_upload_in_flight_at_the_signal_is_read_whole_and_answered(
    fakes: Fakes,
) -> None:
    # Closing a busy connection at the signal (as aiohttp's own shutdown does) drops the rest
    # of its body on the way in: the upload then hangs until the grace and gets a 502.
    async with running_proxy(fakes, "--shutdown-grace-seconds", "5") as proxy:
        async with aiohttp.ClientSession() as session:
            upload = asyncio.create_task(
                session.post(proxy.url + "/api/upload", data=_slow_body(6, 50_000, 0.25))
            )
            await asyncio.sleep(0.4)
            proxy.process.send_signal(signal.SIGTERM)
            response = await asyncio.wait_for(upload, 10)
            assert response.status == 200
            assert json_of(await response.read()) == {"path": "/api/upload", "bytes": 300_000}
            response.release()
        assert await proxy.exited(within_seconds=8) == 0


async def test_a_request_cut_at_the_end_of_the_grace_is_not_put_on_its_client(
    fakes: Fakes,
) -> None:
    async with slow_request_at(fakes, "0.5", 10.0) as (proxy, request):
        proxy.process.send_signal(signal.SIGTERM)
        assert await proxy.exited(within_seconds=5) == 0
        with contextlib.suppress(aiohttp.ClientError):
            await request
    (line,) = [line for line in proxy.err.splitlines() if f"GET {SLOW_PATH} " in line]
    assert f"GET {SLOW_PATH} 503 " in line  # not 499: the client did not leave
