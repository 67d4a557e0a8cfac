"""Clients that behave as no library would: raw bytes, slow bytes, connections held open. Each
waits a bounded time and stops by itself; everything stays on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

STATUS_LINE = re.compile(rb"HTTP/\d\.\d (\d{3}) ")


@dataclass
class Outcome:
    """What a server said on one connection, and whether it closed it."""

    answer: bytes
    closed: bool

    @property
    def status(self) -> int | None:
        match = STATUS_LINE.match(self.answer)
        return int(match.group(1)) if match else None

    @property
    def problem(self) -> dict[str, object]:
        data = json.loads(self.answer.partition(b"\r\n\r\n")[2])
        assert isinstance(data, dict)
        return data


async def read_outcome(
    reader: asyncio.StreamReader, within: float, *, until_answered: bool = False
) -> Outcome:
    """Everything that arrives within ``within`` seconds, stopping early at a close, or with
    ``until_answered`` once one whole answer (with a Content-Length) is in."""
    answer = b""
    try:
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                answer += chunk
                if until_answered and _complete(answer):
                    return Outcome(answer, closed=False)
    except TimeoutError:
        return Outcome(answer, closed=False)
    except ConnectionResetError:
        pass
    return Outcome(answer, closed=True)


def _complete(answer: bytes) -> bool:
    head, separator, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
    return bool(separator and length and len(body) >= int(length.group(1)))


async def send_raw(port: int, request: bytes, *, within: float = 3.0) -> Outcome:
    """Send ``request`` as it is on a fresh connection; what comes back within ``within``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(request)
            await writer.drain()
        return await read_outcome(reader, within)
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def held_open(port: int, first: bytes) -> AsyncIterator[asyncio.StreamReader]:
    """A connection that sends ``first`` and then nothing until the block ends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(first)
            await writer.drain()
        yield reader
    finally:
        writer.close()


async def trickle(
    port: int, request: bytes, *, every: float, within: float, at_once: bytes = b""
) -> Outcome:
    """Send ``at_once``, then ``request`` one byte every ``every`` seconds, watching for an
    answer meanwhile; stops at the answer, at the end, or after ``within`` seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(at_once)
    outcome = asyncio.create_task(read_outcome(reader, within))
    try:
        for byte in request:
            if outcome.done():
                break
            with contextlib.suppress(ConnectionError):
                writer.write(bytes([byte]))
            await asyncio.wait([outcome], timeout=every)
        return await outcome
    finally:
        outcome.cancel()
        writer.close()


async def normal_get(port: int, path: str = "/api/v1.0/normal", within: float = 5.0) -> int:
    """The status of an ordinary GET on a new connection, as a well-behaved client sends it."""
    timeout = aiohttp.ClientTimeout(total=within)
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        await response.read()
        return response.status


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")
