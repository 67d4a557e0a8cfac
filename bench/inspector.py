"""What the inspector costs a request: CPU time per request through proxies that differ
only in their inspector (off; on, the default; on with --inspect-bodies), in one run.

Everything runs in this one process on 127.0.0.1 (a small upstream, the proxies, one client
sending requests one at a time), so CPU time per request is the whole loop's: client, proxy
and upstream. The variants take turns, round after round, and each keeps its best round
(the least disturbed by the rest of the machine); "off again" shows how far apart two
identical proxies land. Figures, not assertions.

    .venv/bin/python bench/inspector.py [--requests 2000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.app import create_app
from proxy.config import load_config

# A status answer of the kind the API gives, and the path it answers.
PAYLOAD = b'{"taskId": 1, "taskStatus": 34, "taskStatusText": "PreProcessingSuccessful"}'
STATUS_PATH = "/api/v1.0/external/sdtask/status?taskId=1"


def describe() -> str:
    return f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, {os.cpu_count()} cores"


VARIANTS = {
    "off": {"inspector": "off"},
    "on": {},
    "on+bodies": {"inspect_bodies": "true"},
    "off again": {"inspector": "off"},
}


def upstream_app() -> web.Application:
    async def token(request: web.Request) -> web.Response:
        return web.json_response({"access_token": "bench", "expires_in": 3600})

    async def api(request: web.Request) -> web.Response:
        return web.Response(body=PAYLOAD, content_type="application/json")

    app = web.Application()
    app.router.add_post("/connect/token", token)
    app.router.add_get("/{path:.*}", api)
    return app


async def start(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def cpu_per_request(session: aiohttp.ClientSession, url: str, requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        async with session.get(url) as response:
            await response.read()
            assert response.status == 200, response.status
    return (time.process_time() - started) / requests


async def measure(args: argparse.Namespace) -> None:
    logging.disable(logging.INFO)  # no access log: it would cost the same in every variant
    upstream = await start(upstream_app())
    urls = {}
    for name, flags in VARIANTS.items():
        settings = {"upstream": str(upstream.make_url("")), "client_id": "bench"} | flags
        config = load_config(settings, {"SMARTDOC_CLIENT_SECRET": "bench-secret"})
        urls[name] = str((await start(create_app(config))).make_url(STATUS_PATH))
    best = dict.fromkeys(urls, float("inf"))
    async with aiohttp.ClientSession() as session:
        for _ in range(args.rounds):
            for name, url in urls.items():
                best[name] = min(best[name], await cpu_per_request(session, url, args.requests))
    for name, seconds in best.items():
        extra = (seconds - best["off"]) * 1e6
        print(f"{name:>10}: {seconds * 1e6:6.1f} µs CPU per request, {extra:+5.1f} µs against off")
    print(f"({args.rounds} rounds x {args.requests} requests, one at a time; best round each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(describe())
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
