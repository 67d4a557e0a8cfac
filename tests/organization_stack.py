"""Several organizations in front of fakes: one fake token endpoint each (issuing tokens named
after the organization, and accepting only its own secret), one fake upstream, and the proxy
configured from a TOML file, served in this process on real sockets through the same
functions ``smartdoc-proxy run`` uses (:func:`proxy.sockets.bind_all`, ``start_sites``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from proxy import sockets as listening
from proxy.app import create_app
from proxy.config import Config, load_config
from tests.fakes import FakeClock, FakeTokenEndpoint, FakeUpstream, token_app, upstream_app


@dataclass(frozen=True)
class Spec:
    """One organization of the stack: an address of its own or not, and its keys."""

    own_address: bool = True
    keys: dict[str, str] = field(default_factory=dict)  # client name -> key


@dataclass
class Answer:
    status: int
    text: str
    headers: dict[str, str]


@dataclass
class OrganizationsStack:
    config: Config
    app: web.Application
    sockets: listening.Sockets
    endpoints: dict[str, FakeTokenEndpoint]
    upstream: FakeUpstream
    clock: FakeClock
    folder: Path

    def url(self, organization: str | None = None) -> str:
        """An organization's own address, or (``None``) the shared one."""
        bound = (
            self.sockets.main if organization is None else self.sockets.organizations[organization]
        )
        return f"http://{bound.listen}"

    def secret_file(self, organization: str) -> Path:
        return self.folder / f"{organization}-secret"

    async def get(
        self, path: str, via: str | None = None, key: str | None = None, **headers: str
    ) -> Answer:
        if key is not None:
            headers["X-Proxy-Key"] = key
        return await fetch("GET", self.url(via) + path, headers)

    async def post(
        self, path: str, via: str | None = None, data: dict[str, str] | None = None
    ) -> Answer:
        return await fetch("POST", self.url(via) + path, {}, data)


async def fetch(
    method: str,
    url: str,
    headers: dict[str, str],
    data: dict[str, str] | None = None,
    json_body: object = None,
) -> Answer:
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(method, url, headers=headers, data=data, json=json_body) as response,
    ):
        return Answer(response.status, await response.text(), dict(response.headers))


MakeOrganizations = Callable[..., Awaitable[OrganizationsStack]]


def organizations_toml(
    folder: Path, specs: dict[str, Spec], token_urls: dict[str, str], upstream: str
) -> str:
    lines = [f'listen = "127.0.0.1:0"\nupstream = "{upstream}"\n']
    for name, spec in specs.items():
        (folder / f"{name}-secret").write_text(f"{name}-secret\n", encoding="utf-8")
        lines += [
            f"[organizations.{name}]",
            f'client_id = "{name}-client"',
            f'client_secret_file = "{folder}/{name}-secret"',
            f'token_url = "{token_urls[name]}"',
        ]
        if spec.own_address:
            lines.append('listen = "127.0.0.1:0"')
        if spec.keys:
            keys = folder / f"{name}-keys"
            keys.write_text("".join(f"{n} {k}\n" for n, k in spec.keys.items()), encoding="utf-8")
            lines.append(f'inbound_keys_file = "{keys}"')
        lines.append("")
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def organizations_stack(
    aiohttp_server: Callable[[web.Application], Awaitable[object]],
    folder: Path,
    specs: dict[str, Spec],
    **flags: str,
) -> AsyncIterator[OrganizationsStack]:
    endpoints = {name: FakeTokenEndpoint(prefix=name, secret=f"{name}-secret") for name in specs}
    token_urls = {}
    for name, endpoint in endpoints.items():
        token_server = await aiohttp_server(token_app(endpoint))
        token_urls[name] = str(token_server.make_url("/connect/token"))  # type: ignore[attr-defined]
    upstream = FakeUpstream()
    upstream_server = await aiohttp_server(upstream_app(upstream))
    toml = folder / "proxy.toml"
    origin = str(upstream_server.make_url("")).rstrip("/")  # type: ignore[attr-defined]
    toml.write_text(organizations_toml(folder, specs, token_urls, origin), encoding="utf-8")
    config = load_config({"config": str(toml)} | flags, {})
    clock = FakeClock()
    async with serving(config, clock) as (app, sockets):
        yield OrganizationsStack(config, app, sockets, endpoints, upstream, clock, folder)


@contextlib.asynccontextmanager
async def serving(
    config: Config, clock: FakeClock | None = None
) -> AsyncIterator[tuple[web.Application, listening.Sockets]]:
    """The proxy on every address of ``config``, in this process."""
    clock = clock or FakeClock()
    app = create_app(config, clock=clock, sleep=clock.sleep)
    sockets = listening.bind_all(app, config)
    # As smartdoc-proxy run does: a client that leaves cancels its request.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    try:
        await listening.start_sites(runner, sockets, None)
        yield app, sockets
    finally:
        await runner.cleanup()
