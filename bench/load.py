"""The loads: wrk for request rates and latency, curl for large transfers, and an asyncio
client for idle keep-alive connections. Each is bounded in time or size and stops by itself.

Every measurement reads the contender's own CPU counters just before and just after the load,
so its CPU time per request covers exactly the requests it served meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench import procs
from bench.contenders import Contender

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")


@dataclass(frozen=True)
class Sample:
    """One measured run of one contender. ``extra`` holds what only some scenarios measure."""

    requests: int
    seconds: float
    errors: int = 0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_us_per_request: float | None = None
    extra: Mapping[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def cpu_now(contender: Contender) -> float:
    return procs.cpu_seconds(contender.pid) if contender.pid else 0.0


def per_request_us(contender: Contender, cpu_before: float, requests: int) -> float | None:
    if contender.pid is None or not requests:
        return None
    return (cpu_now(contender) - cpu_before) / requests * 1e6


def wrk(
    contender: Contender,
    path: str,
    *,
    connections: int,
    seconds: float,
    body_bytes: int = 0,
    headers: Mapping[str, str] | None = None,
) -> Sample:
    """``seconds`` of wrk (one thread) at ``connections`` against ``contender``."""
    # wrk takes whole seconds only.
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    for name, value in {**contender.headers, **(headers or {})}.items():
        argv += ["-H", f"{name}: {value}"]
    argv += ["-s", str(WRK_SCRIPT), contender.origin + path]
    env = {**os.environ, "BENCH_BODY_BYTES": str(body_bytes)}
    before = cpu_now(contender)
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=seconds + 60, check=True
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))
    summary = json.loads(line.removeprefix("BENCH "))
    return Sample(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        errors=summary["errors"] + summary["status_errors"],
        p50_ms=summary["p50_us"] / 1000,
        p90_ms=summary["p90_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        cpu_us_per_request=per_request_us(contender, before, summary["requests"]),
    )


def transfer(contender: Contender, direction: str, size: int, source: Path) -> Sample:
    """One ``download`` of ``size`` bytes or one ``upload`` of ``source`` (``size`` bytes)
    with curl, with the throughput and the contender's peak RSS during it."""
    url = contender.origin + ("/upload" if direction == "upload" else f"/bytes/{size}")
    # The upload's answer is the upstream's byte count; a download's body is thrown away.
    sink = "-" if direction == "upload" else "/dev/null"
    argv = ["curl", "-sS", "--fail", "--max-time", "300", "-H", "Expect:", "-o", sink]
    for name, value in contender.headers.items():
        argv += ["-H", f"{name}: {value}"]
    if direction == "upload":
        argv += ["-T", str(source)]
    argv += ["-w", "\n%{size_download} %{size_upload} %{time_total}", url]
    pid = contender.pid
    peak_resettable = pid is not None and procs.reset_peak_rss(pid)
    before = cpu_now(contender)
    out = subprocess.run(argv, capture_output=True, check=True, timeout=330).stdout
    body, _, tail = out.rpartition(b"\n")
    downloaded, uploaded, seconds = (float(x) for x in tail.split())
    moved = int(uploaded if direction == "upload" else downloaded)
    if direction == "upload":
        moved = min(moved, json.loads(body)["bytes"])  # what the upstream really received
    extra = {"mib_per_s": moved / seconds / 2**20, "moved": moved}
    if pid is not None:
        extra["peak_rss_mib"] = procs.peak_rss_mib(pid)
        extra["peak_is_cumulative"] = float(not peak_resettable)
    cpu = per_request_us(contender, before, 1)
    return Sample(1, seconds, errors=int(moved != size), cpu_us_per_request=cpu, extra=extra)


async def _one_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> bool:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return head.startswith(b"HTTP/1.1 200")


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _open(contender: Contender, count: int, request: bytes) -> list[Connection]:
    host, port = contender.origin.removeprefix("http://").split(":")
    gate = asyncio.Semaphore(200)

    async def one() -> Connection | None:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(host, int(port))
                if await _one_request(reader, writer, request):
                    return reader, writer
            except (OSError, asyncio.IncompleteReadError):
                pass
            return None

    opened = await asyncio.gather(*(one() for _ in range(count)))
    return [c for c in opened if c is not None]


async def _still_served(connections: list[Connection], request: bytes) -> int:
    gate = asyncio.Semaphore(200)

    async def one(connection: Connection) -> bool:
        async with gate:
            try:
                return await asyncio.wait_for(_one_request(*connection, request), 10)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                return False

    return sum(await asyncio.gather(*(one(c) for c in connections)))


async def hold_idle(
    contender: Contender, count: int, path: str, load: Callable[[], Awaitable[Sample]]
) -> Sample:
    """Open ``count`` keep-alive connections (one request each), run ``load`` while they sit
    idle, then ask once more on each: how many were held, and the contender's RSS."""
    lines = [f"GET {path} HTTP/1.1", "Host: bench"]
    lines += [f"{name}: {value}" for name, value in contender.headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    connections = await _open(contender, count, request)
    pid, extra = contender.pid, {"opened": float(len(connections))}
    try:
        if pid is not None:
            extra["rss_idle_mib"] = procs.rss_mib(pid)
        sample = await load()
        if pid is not None:
            extra["rss_loaded_mib"] = procs.rss_mib(pid)
        extra["held"] = await _still_served(connections, request)
    finally:
        for _, writer in connections:
            writer.close()
    return dataclasses.replace(sample, extra=extra)
