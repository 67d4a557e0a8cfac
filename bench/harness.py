"""What both benchmarks share: an upstream process and a proxy process on 127.0.0.1 only.

The upstream serves a token endpoint, a small JSON API answer, a download of any size and an
upload sink; the proxy is ``python -m proxy run`` in front of it. Both stop when the context
ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

PAYLOAD = b'{"taskId": 1, "taskStatus": 34, "taskStatusText": "PreProcessingSuccessful"}'
STATUS_PATH = "/api/v1.0/external/sdtask/status?taskId=1"
CHUNK = b"x" * 65536


@dataclass(frozen=True)
class Stack:
    upstream: str
    proxy: str
    proxy_pid: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_upstream(port: int) -> None:
    async def token(request: web.Request) -> web.Response:
        return web.json_response({"access_token": "bench", "expires_in": 3600})

    async def api(request: web.Request) -> web.Response:
        return web.Response(body=PAYLOAD, content_type="application/json")

    async def download(request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        response = web.StreamResponse(headers={"Content-Length": str(size)})
        await response.prepare(request)
        for _ in range(size // len(CHUNK)):
            await response.write(CHUNK)
        await response.write_eof()
        return response

    async def upload(request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
        return web.json_response({"bytes": size})

    app = web.Application()
    app.router.add_post("/connect/token", token)
    app.router.add_get("/download/{size}", download)
    app.router.add_put("/upload", upload)
    app.router.add_get("/{path:.*}", api)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def _wait_until_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise SystemExit(f"{url} never came up")


@contextlib.contextmanager
def running() -> Iterator[Stack]:
    upstream_port, proxy_port = free_port(), free_port()
    env = os.environ | {"SMARTDOC_CLIENT_SECRET": "bench-secret", "SMARTDOC_LOG_LEVEL": "WARNING"}
    here = str(Path(__file__).resolve().parent)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", f"import harness; harness.serve_upstream({upstream_port})"],
            cwd=here,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "proxy", "run", "--listen", f"127.0.0.1:{proxy_port}",
             "--upstream", f"http://127.0.0.1:{upstream_port}", "--client-id", "bench"],
            env=env,
        ),
    ]  # fmt: skip
    try:
        stack = Stack(
            f"http://127.0.0.1:{upstream_port}", f"http://127.0.0.1:{proxy_port}", children[1].pid
        )
        asyncio.run(_wait_until_up(stack.upstream + STATUS_PATH))
        asyncio.run(_wait_until_up(stack.proxy + "/_proxy/readyz"))
        yield stack
    finally:
        for child in children:
            child.terminate()
            child.wait(10)


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def describe() -> str:
    version = sys.version.split()[0]
    return f"python {version}, aiohttp {aiohttp.__version__}, {os.cpu_count()} cores"
