"""Bodies stream through the proxy with bounded memory: move a large download and a large
upload straight and through the proxy, and print throughput and the proxy's peak memory.

Runs on 127.0.0.1 only and stops by itself. Figures, not assertions.

    .venv/bin/python bench/streaming.py [--mib 256]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    with harness.running() as stack:
        print(harness.describe())
        before = harness.peak_rss_mib(stack.proxy_pid)
        for name, direct, proxied in (
            ("download", download(f"{stack.upstream}/download/{size}"),
             download(f"{stack.proxy}/download/{size}")),
            ("upload", upload(f"{stack.upstream}/upload", size),
             upload(f"{stack.proxy}/upload", size)),
        ):  # fmt: skip
            moved_direct, direct_seconds = asyncio.run(direct)
            moved_proxied, proxied_seconds = asyncio.run(proxied)
            assert moved_direct == moved_proxied == size, (moved_direct, moved_proxied)
            print(
                f"{name:>8} {args.mib} MiB: direct {args.mib / direct_seconds:7.0f} MiB/s, "
                f"through the proxy {args.mib / proxied_seconds:7.0f} MiB/s "
                f"(ratio {direct_seconds / proxied_seconds:.2f})"
            )
        after = harness.peak_rss_mib(stack.proxy_pid)
        print(
            f"proxy peak memory: {before:.0f} MiB before, {after:.0f} MiB after moving "
            f"{2 * args.mib} MiB (growth {after - before:.1f} MiB)"
        )


if __name__ == "__main__":
    main()
