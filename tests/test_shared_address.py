"""The proxy's own endpoints answer on the shared address of several organizations too: no
organization to choose there, only a key where keys exist."""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import make_mocked_request
from yarl import URL

from proxy.app import create_app
from proxy.config import load_config
from proxy.grants import unreachable_reason
from tests.fakes import FakeTokenEndpoint, FakeUpstream, token_app, upstream_app


async def test_metrics_and_404s_on_the_shared_address_of_several_organizations(
    aiohttp_server,  # type: ignore[no-untyped-def]
    aiohttp_client,  # type: ignore[no-untyped-def]
) -> None:
    token_server = await aiohttp_server(token_app(FakeTokenEndpoint()))
    upstream_server = await aiohttp_server(upstream_app(FakeUpstream()))
    organizations = {
        name: {"client_id": name, "client_secret": "s", "listen": "127.0.0.1:0"}
        for name in ("acme", "globex")
    }
    config = load_config(
        {"upstream": str(upstream_server.make_url("/")).rstrip("/"),
         "token_url": str(token_server.make_url("/connect/token"))},
        {},
        organizations=organizations,
    )  # fmt: skip
    client = await aiohttp_client(create_app(config))
    assert (await client.get("/_proxy/metrics")).status == 200
    assert (await client.get("/_proxy/nothing-here")).status == 404
    assert (await client.get("/_proxy/healthz")).status == 200
    assert (await client.get("/api/x")).status == 401  # an API request must choose


def test_an_egress_proxy_failure_is_said_in_words() -> None:
    request = make_mocked_request("GET", "/")
    info = aiohttp.RequestInfo(
        URL("https://api.example"), "GET", request.headers, URL("https://api.example")
    )
    refused = aiohttp.ClientHttpProxyError(info, (), status=407, message="Proxy Authentication")
    assert (
        unreachable_reason(refused) == "is unreachable: the egress proxy refused the tunnel (407)"
    )
