"""The hostile cases the hardening issue measured, as a new user meets them: ``smartdoc-proxy
run`` as a real process with its default limits, its memory read from /proc while 100 hostile
clients connect, and an ordinary request served meanwhile. Then the open-files limit raised at
start-up. Everything on 127.0.0.1, each case bounded to a few seconds.

Before these limits, on this machine: 100 unfinished heads of 960 KB took the proxy from 40 to
227 MB, 100 stalled 1 MiB bodies from 39 to 163 MB and never timed out (tests fail on that
code: the first bound below is 64 MB, and a client there waited for ever).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import resource
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from proxy.limits import OPEN_FILES_CEILING
from tests.fakes import (
    SECRET,
    FakeTokenEndpoint,
    FakeUpstream,
    child_env,
    free_port,
    token_app,
    upstream_app,
)
from tests.raw_clients import normal_get, rss_mib, send_raw

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


@dataclass
class Proxy:
    process: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def rss_mib(self) -> float:
        return rss_mib(self.process.pid)


@contextlib.asynccontextmanager
async def proxy_run(aiohttp_server, tmp_path: Path, *flags: str) -> AsyncIterator[Proxy]:  # type: ignore[no-untyped-def]
    """``python -m proxy run`` in front of a fake token endpoint and upstream, once it answers
    a request; killed at the end."""
    token_server = await aiohttp_server(token_app(FakeTokenEndpoint()))
    upstream_server = await aiohttp_server(upstream_app(FakeUpstream()))
    port, log = free_port(), tmp_path / "proxy.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy", "run", "--listen", f"127.0.0.1:{port}",
            "--upstream", str(upstream_server.make_url("")),
            "--token-url", str(token_server.make_url("/connect/token")), "--client-id", "x",
            *flags,
            env=child_env(SMARTDOC_CLIENT_SECRET=SECRET),
            cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        await _until_serving(process, port)
        yield Proxy(process, port, log)
    finally:
        process.kill()
        await process.wait()


async def _until_serving(process: asyncio.subprocess.Process, port: int) -> None:
    for _ in range(160):
        assert process.returncode is None, "the proxy exited"
        with contextlib.suppress(aiohttp.ClientConnectionError):
            if await normal_get(port, "/api/warm-up", within=1) == 200:
                return
        await asyncio.sleep(0.05)
    pytest.fail("the proxy never served a request")


async def peak_rss_while(proxy: Proxy, work: asyncio.Future[object]) -> float:
    """The proxy's largest resident memory, sampled every 20 ms until ``work`` is done."""
    peak = proxy.rss_mib
    while not work.done():
        peak = max(peak, proxy.rss_mib)
        await asyncio.sleep(0.02)
    return peak


async def test_100_unfinished_960_kb_heads_are_refused_at_64_kib_and_take_little_memory(  # type: ignore[no-untyped-def]
    aiohttp_server, tmp_path: Path
) -> None:
    head = b"GET /api/x HTTP/1.1\r\nHost: p\r\n" + b"".join(
        b"X-H%03d: %s\r\n" % (i, b"h" * 8000) for i in range(120)
    )
    assert len(head) > 950_000
    async with proxy_run(aiohttp_server, tmp_path) as proxy:
        before = proxy.rss_mib
        clients = asyncio.gather(*(send_raw(proxy.port, head, within=4) for _ in range(100)))
        meanwhile = await normal_get(proxy.port, within=2)
        peak = await peak_rss_while(proxy, clients)
        outcomes = clients.result()
    statuses = collections.Counter(outcome.status for outcome in outcomes)
    print(f"RSS {before:.0f} MiB before, {peak:.0f} MiB at the peak; answers {statuses}")
    assert meanwhile == 200
    assert all(outcome.closed for outcome in outcomes)
    # A client still writing its head when the 431 comes may see the connection reset first.
    assert set(statuses) <= {431, None}, statuses
    assert statuses[431] >= 50, statuses
    assert peak - before < 64, (before, peak)


async def test_100_stalled_1_mib_bodies_time_out_and_their_memory_is_bounded(  # type: ignore[no-untyped-def]
    aiohttp_server, tmp_path: Path
) -> None:
    head = b"POST /api/x HTTP/1.1\r\nHost: p\r\nContent-Length: %d\r\n\r\n" % MIB
    flags = ("--client-body-timeout-seconds", "1.5", "--upstream-pool-timeout-seconds", "1")
    async with proxy_run(aiohttp_server, tmp_path, *flags) as proxy:
        before = proxy.rss_mib
        stalled = (send_raw(proxy.port, head + b"b" * 1_000_000, within=3) for _ in range(100))
        clients = asyncio.gather(*stalled)
        meanwhile = await normal_get(proxy.port, within=2)
        peak = await peak_rss_while(proxy, clients)
        outcomes = clients.result()
    statuses = collections.Counter(outcome.status for outcome in outcomes)
    print(f"RSS {before:.0f} MiB before, {peak:.0f} MiB at the peak; answers {statuses}")
    assert meanwhile == 200
    # 408 when the body stalled; 503 for a body that found no streaming connection free.
    assert set(statuses) <= {408, 503}, statuses
    assert statuses[408] >= 50, statuses
    # The replay budget (16 MiB) and each connection's small read buffer, no more.
    assert peak - before < 64, (before, peak)


def _low_soft_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


async def test_at_start_up_the_open_files_limit_is_raised_to_the_hard_limit_and_logged() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"the hard open-files limit here is {hard}: nothing to raise")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "demo", "--listen", f"127.0.0.1:{free_port()}",
        env=child_env(), cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        preexec_fn=_low_soft_limit,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        line = b""
        async with asyncio.timeout(8):
            while b"open files" not in line:
                line = await process.stderr.readline()
                assert line, "the proxy exited without saying its open-files limit"
    finally:
        process.kill()
        await process.wait()
    raised = OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else hard
    assert f"open files: limit {raised} (soft limit was 256" in line.decode()
