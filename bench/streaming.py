"""Bodies stream through the proxy with bounded memory: move a large download and a large
upload straight and through the proxy, and print throughput and the proxy's peak memory.

Runs on 127.0.0.1 only and stops by itself. Figures, not assertions.

    .venv/bin/python bench/streaming.py [--mib 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import harness


async def download(url: str) -> tuple[int, float]:
    started, size = time.perf_counter(), 0
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
    return size, time.perf_counter() - started


async def upload(url: str, size: int) -> tuple[int, float]:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // len(harness.CHUNK)):
            yield harness.CHUNK

    started = time.perf_counter()
    headers = {"Content-Length": str(size)}
    async with (
        aiohttp.ClientSession() as session,
        session.put(url, data=body(), headers=headers) as response,
    ):
        received = (await response.json())["bytes"]
    return received, time.perf_counter() - started


async def rounds(
    direct: Callable[[], Awaitable[tuple[int, float]]],
    proxied: Callable[[], Awaitable[tuple[int, float]]],
    size: int,
    count: int,
) -> tuple[float, float]:
    """Median seconds of ``count`` alternating runs straight and through the proxy."""
    times: dict[str, list[float]] = {"direct": [], "proxy": []}
    for _ in range(count):
        for name, run in (("direct", direct), ("proxy", proxied)):
            moved, seconds = await run()
            assert moved == size, (name, moved)
            times[name].append(seconds)
    return statistics.median(times["direct"]), statistics.median(times["proxy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    with harness.running() as stack:
        print(harness.describe())
        before = harness.peak_rss_mib(stack.proxy_pid)
        cases = {
            "download": (lambda: download(f"{stack.upstream}/download/{size}"),
                         lambda: download(f"{stack.proxy}/download/{size}")),
            "upload": (lambda: upload(f"{stack.upstream}/upload", size),
                       lambda: upload(f"{stack.proxy}/upload", size)),
        }  # fmt: skip
        for name, (direct, proxied) in cases.items():
            direct_s, proxy_s = asyncio.run(rounds(direct, proxied, size, args.rounds))
            print(
                f"{name:>8} {args.mib} MiB, median of {args.rounds}: "
                f"direct {args.mib / direct_s:5.0f} MiB/s, through the proxy "
                f"{args.mib / proxy_s:5.0f} MiB/s (ratio {direct_s / proxy_s:.2f})"
            )
        after = harness.peak_rss_mib(stack.proxy_pid)
        moved = 2 * 2 * args.rounds * args.mib
        print(
            f"proxy peak memory: {before:.0f} MiB before, {after:.0f} MiB after moving "
            f"{moved // 2} MiB through it (growth {after - before:.1f} MiB)"
        )


if __name__ == "__main__":
    main()
