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
import os
import socket
import statistics
import subprocess
import sys
import time

import aiohttp
from aiohttp import web

PAYLOAD = b'{"taskId": 1, "taskStatus": 34, "taskStatusText": "PreProcessingSuccessful"}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_upstream(port: int) -> None:
    async def token(request: web.Request) -> web.Response:
        return web.json_response({"access_token": "bench", "expires_in": 3600})

    async def api(request: web.Request) -> web.Response:
        return web.Response(body=PAYLOAD, content_type="application/json")

    app = web.Application()
    app.router.add_post("/connect/token", token)
    app.router.add_get("/{path:.*}", api)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def wait_until_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit(f"{url} never came up")


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
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    upstream_port, proxy_port = free_port(), free_port()
    env = os.environ | {"SMARTDOC_CLIENT_SECRET": "bench-secret", "SMARTDOC_LOG_LEVEL": "WARNING"}
    children = [
        subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(upstream_port)]),
        subprocess.Popen(
            [sys.executable, "-m", "proxy", "run", "--listen", f"127.0.0.1:{proxy_port}",
             "--upstream", f"http://127.0.0.1:{upstream_port}", "--client-id", "bench"],
            env=env,
        ),
    ]  # fmt: skip
    try:
        path = "/api/v1.0/external/sdtask/status?taskId=1"
        asyncio.run(wait_until_up(f"http://127.0.0.1:{upstream_port}{path}"))
        asyncio.run(wait_until_up(f"http://127.0.0.1:{proxy_port}/_proxy/readyz"))
        version = sys.version.split()[0]
        print(f"python {version}, aiohttp {aiohttp.__version__}, {os.cpu_count()} cores")
        asyncio.run(
            measure(
                args,
                f"http://127.0.0.1:{upstream_port}{path}",
                f"http://127.0.0.1:{proxy_port}{path}",
            )
        )
    finally:
        for child in children:
            child.terminate()
            child.wait(10)


if __name__ == "__main__":
    main()
