"""What the proxy costs: the same requests sent straight to an upstream and through the proxy.

Starts, on 127.0.0.1 only, a small upstream (a token endpoint and a JSON API, in its own
process) and the proxy (``python -m proxy run``, in its own process), then sends the same
bounded load to each, alternately, and prints requests per second, latency percentiles and
the proxy/direct ratios measured in this run. Figures, not assertions: the test suite holds
no timing claims.

    .venv/bin/python bench/overhead.py [--requests 3000] [--concurrency 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
import harness


async def load(url: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = iter(range(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return requests / (time.perf_counter() - started), latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


async def measure(args: argparse.Namespace, direct: str, proxied: str) -> None:
    results: dict[str, list[tuple[float, list[float]]]] = {"direct": [], "proxy": []}
    for _ in range(args.rounds):
        for name, url in (("direct", direct), ("proxy", proxied)):
            results[name].append(await load(url, args.requests, args.concurrency))
    summary = {}
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        latencies = [x for _, lats in runs for x in lats]
        summary[name] = (rps, pct(latencies, 50), pct(latencies, 99))
        print(
            f"{name:>6}: {rps:8.0f} req/s  p50 {summary[name][1]:6.2f} ms  "
            f"p99 {summary[name][2]:6.2f} ms  ({args.rounds} rounds x {args.requests} requests, "
            f"concurrency {args.concurrency})"
        )
    (d_rps, d50, d99), (p_rps, p50, p99) = summary["direct"], summary["proxy"]
    print(
        f" ratio: proxy/direct throughput {p_rps / d_rps:.2f}, "
        f"p50 latency x{p50 / d50:.2f}, p99 latency x{p99 / d99:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with harness.running() as stack:
        print(harness.describe())
        asyncio.run(
            measure(args, stack.upstream + harness.STATUS_PATH, stack.proxy + harness.STATUS_PATH)
        )


if __name__ == "__main__":
    main()
