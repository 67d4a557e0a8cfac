"""Fixtures: a fake token endpoint, a fake upstream and the proxy in front of them, each a
real server on loopback; and a throwaway CA for the HTTPS fakes."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.app import create_app
from proxy.config import Config, load_config
from proxy.runner import ProxyRunner, make_runner
from tests.fakes import (
    CLIENT_ID,
    SECRET,
    FakeClock,
    FakeTokenEndpoint,
    FakeUpstream,
    token_app,
    upstream_app,
)


@dataclass
class Stack:
    """The proxy under test with its fakes."""

    client: TestClient[object, object]
    endpoint: FakeTokenEndpoint
    upstream: FakeUpstream
    clock: FakeClock
    config: Config
    token_server: TestServer
    upstream_server: TestServer


MakeStack = Callable[..., Awaitable[Stack]]


class ProxyTestServer(TestServer):
    """The proxy served as ``smartdoc-proxy run`` serves it: through :mod:`proxy.runner`, so
    with every connection limit of ``config``."""

    def __init__(self, app: web.Application, config: Config) -> None:
        super().__init__(app, host="127.0.0.1")
        self.config = config

    async def _make_runner(self, **kwargs: Any) -> ProxyRunner:
        return make_runner(self.app, self.config, **kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def endpoint() -> FakeTokenEndpoint:
    return FakeTokenEndpoint()


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture
def make_stack(aiohttp_server, aiohttp_client, endpoint, upstream, clock) -> MakeStack:  # type: ignore[no-untyped-def]
    """Start the fakes and a proxy configured for them; ``flags`` override settings."""

    async def make(env: dict[str, str] | None = None, **flags: str) -> Stack:
        token_server = await aiohttp_server(token_app(endpoint))
        upstream_server = await aiohttp_server(upstream_app(upstream))
        settings = {
            "upstream": str(upstream_server.make_url("/")),
            "token_url": str(token_server.make_url("/connect/token")),
            "client_id": CLIENT_ID,
        } | flags
        config = load_config(settings, {"SMARTDOC_CLIENT_SECRET": SECRET} | (env or {}))
        app = create_app(config, clock=clock, sleep=clock.sleep)
        client = await aiohttp_client(ProxyTestServer(app, config))
        return Stack(client, endpoint, upstream, clock, config, token_server, upstream_server)

    return make


# A CA made for the test, which no system trusts, and an HTTPS fake's certificate from it
# (for 127.0.0.1): the egress and TLS tests.
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "corporate-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context
