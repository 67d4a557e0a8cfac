"""A corporate egress proxy for the tests: a real forward proxy on loopback that records what it
was asked and every byte its clients sent it.

``CONNECT host:port`` opens a tunnel and relays bytes both ways without looking inside; a
request in absolute form (``GET http://host:port/path``) is sent on to its origin and answered,
one per connection. Only loopback targets are served: anything else gets 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from yarl import URL


@dataclass(frozen=True)
class Asked:
    """One request the egress proxy received: its method, its target and its headers."""

    method: str
    target: str
    headers: dict[str, str]


@dataclass
class ForwardProxy:
    port: int = 0
    asked: list[Asked] = field(default_factory=list)
    # Everything clients sent, tunnelled bytes included: what the egress proxy could read.
    seen: bytearray = field(default_factory=bytearray)
    # When set, every request must carry this Proxy-Authorization, or gets 407.
    require_auth: str | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def methods(self) -> set[str]:
        return {a.method for a in self.asked}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        self.seen += head
        asked = _parse(head)
        self.asked.append(asked)
        try:
            if self.require_auth and asked.headers.get("proxy-authorization") != self.require_auth:
                await _answer(writer, b"407 Proxy Authentication Required")
            elif asked.method == "CONNECT":
                await self._tunnel(asked.target, reader, writer)
            else:
                await self._forward(asked, head, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port = target.rpartition(":")
        if not _loopback(host):
            await _answer(writer, b"403 Forbidden")
            return
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(self._pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()

    async def _forward(
        self,
        asked: Asked,
        head: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        url = URL(asked.target)
        if not url.is_absolute() or not _loopback(url.host or ""):
            await _answer(writer, b"403 Forbidden")
            return
        body = await reader.readexactly(int(asked.headers.get("content-length", "0")))
        self.seen += body
        up_reader, up_writer = await asyncio.open_connection(url.host, url.port)
        request_line, _, rest = head.partition(b"\r\n")
        origin_form = request_line.replace(asked.target.encode(), url.raw_path_qs.encode(), 1)
        # One request per connection, so the answer ends when the origin closes.
        up_writer.write(origin_form + b"\r\nConnection: close\r\n" + rest + body)
        await up_writer.drain()
        writer.write(await up_reader.read(-1))
        await writer.drain()
        up_writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            self.seen += chunk
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()


def _parse(head: bytes) -> Asked:
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return Asked(method, target, headers)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def _answer(writer: asyncio.StreamWriter, status: bytes) -> None:
    writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await writer.drain()


@contextlib.asynccontextmanager
async def forward_proxy(require_auth: str | None = None) -> AsyncIterator[ForwardProxy]:
    """A :class:`ForwardProxy` listening on a free loopback port."""
    proxy = ForwardProxy(require_auth=require_auth)
    server = await asyncio.start_server(proxy.serve, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        for writer in proxy.writers:
            writer.close()
        await server.wait_closed()
