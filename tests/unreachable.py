"""Token endpoints that cannot be reached, each for a real reason and all on this machine: a
closed port, a name that does not resolve, a certificate nobody trusts, a server that never
answers. Each is an async context manager that gives the token URL to try."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import trustme
from aiohttp import web

from tests.fakes import FakeTokenEndpoint, free_port, token_app

# Longer than a DNS name may be (255 bytes) in labels that are each valid, so the C library's
# resolver refuses to build the query and fails at once with "Name or service not known":
# nothing leaves the machine (checked with strace when this was written). A plain
# "token.invalid" would be sent to the configured name server, which here is not local. The
# .invalid TLD (RFC 6761) still guarantees NXDOMAIN, should some resolver ask after all.
UNRESOLVABLE_HOST = ".".join(["a" * 60] * 5) + ".invalid"
TOKEN_PATH = "/connect/token"

Endpoint = Callable[[], AbstractAsyncContextManager[str]]


@contextlib.asynccontextmanager
async def closed_port() -> AsyncIterator[str]:
    yield f"http://127.0.0.1:{free_port()}{TOKEN_PATH}"


@contextlib.asynccontextmanager
async def unresolvable_name() -> AsyncIterator[str]:
    yield f"https://{UNRESOLVABLE_HOST}{TOKEN_PATH}"


@contextlib.asynccontextmanager
async def untrusted_certificate() -> AsyncIterator[str]:
    """A real token endpoint over HTTPS, with a certificate from a CA made for the test."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    runner = web.AppRunner(token_app(FakeTokenEndpoint()))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}{TOKEN_PATH}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def plain_http_for_https() -> AsyncIterator[str]:
    """A real token endpoint, asked over HTTPS though it speaks plain HTTP."""
    runner = web.AppRunner(token_app(FakeTokenEndpoint()))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}{TOKEN_PATH}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """Accepts every connection and reads what comes, but never answers."""
    connections: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read(-1)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}{TOKEN_PATH}"
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


TIMEOUT_SECONDS = 1
# Each cause, and how the proxy words it after "the token endpoint ".
CAUSES: list[tuple[Endpoint, str]] = [
    (closed_port, "is unreachable: connection refused"),
    (unresolvable_name, "is unreachable: its host name could not be resolved"),
    (untrusted_certificate, "failed TLS verification: unable to get local issuer certificate"),
    (plain_http_for_https, "failed the TLS handshake (wrong version number)"),
    (silent_server, f"did not answer within {TIMEOUT_SECONDS} s"),
]
CAUSE_IDS = ["closed-port", "unresolvable-name", "untrusted-certificate", "plain-http", "silent"]
