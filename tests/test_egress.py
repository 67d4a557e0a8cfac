"""Corporate networks: the upstream and the token endpoint reached through an egress proxy
named by HTTPS_PROXY / HTTP_PROXY, or around it by NO_PROXY; the secret and the token cross
it only inside a CONNECT tunnel.

The egress proxy is a real forward proxy on loopback (tests/forward_proxy.py); the targets
are the fake token endpoint and upstream, over TLS with a CA made for the test.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from proxy.app import create_app
from proxy.config import ConfigError, load_config
from proxy.egress import DIRECTLY, EgressProxies, bypasses, explain
from tests.fakes import (
    CLIENT_ID,
    SECRET,
    FakeTokenEndpoint,
    FakeUpstream,
    free_port,
    token_app,
    upstream_app,
)
from tests.forward_proxy import ForwardProxy, forward_proxy
from tests.test_cli import base_env, run_cli
from tests.test_shutdown import Proxy, wait_until_healthy

API_PATH = "/api/v1.0/external/sdworkspace/CurrentWorkspaces"


@dataclass
class Targets:
    token_server: TestServer
    upstream_server: TestServer

    def settings(self, **extra: str) -> dict[str, str | None]:
        return {
            "upstream": str(self.upstream_server.make_url("/")),
            "token_url": str(self.token_server.make_url("/connect/token")),
            "client_id": CLIENT_ID,
        } | extra


@pytest.fixture
async def https_targets(  # type: ignore[no-untyped-def]
    aiohttp_server, endpoint: FakeTokenEndpoint, upstream: FakeUpstream, server_tls
) -> Targets:
    return Targets(
        await aiohttp_server(token_app(endpoint), ssl=server_tls),
        await aiohttp_server(upstream_app(upstream), ssl=server_tls),
    )


@pytest.fixture
async def http_targets(  # type: ignore[no-untyped-def]
    aiohttp_server, endpoint: FakeTokenEndpoint, upstream: FakeUpstream
) -> Targets:
    return Targets(
        await aiohttp_server(token_app(endpoint)), await aiohttp_server(upstream_app(upstream))
    )


async def proxy_client(  # type: ignore[no-untyped-def]
    aiohttp_client, targets: Targets, env: dict[str, str], **flags: str
) -> TestClient[object, object]:
    """The proxy for ``targets``, reaching them as the egress variables in ``env`` say."""
    config = load_config(targets.settings(**flags), {"SMARTDOC_CLIENT_SECRET": SECRET})
    app = create_app(config, proxies=EgressProxies.from_environment(env))
    client: TestClient[object, object] = await aiohttp_client(app)
    return client


def assert_nothing_in_clear(egress: ForwardProxy, upstream: FakeUpstream) -> None:
    """Neither the secret nor the token crossed the egress proxy where it could read them."""
    assert upstream.tokens_seen, "the upstream received nothing: the test would prove nothing"
    for token in upstream.tokens_seen:
        assert token.encode() not in egress.seen
    for needle in (SECRET.encode(), b"client_secret", b"Authorization", b"Bearer"):
        assert needle not in egress.seen


async def test_token_fetches_and_requests_to_https_targets_go_only_through_connect_tunnels(
    aiohttp_client, https_targets: Targets, upstream: FakeUpstream, ca_file: Path
) -> None:  # type: ignore[no-untyped-def]
    async with forward_proxy() as egress:
        client = await proxy_client(
            aiohttp_client,
            https_targets,
            {"HTTPS_PROXY": egress.url},
            upstream_ca_file=str(ca_file),
        )

        response = await client.get(API_PATH)

        assert response.status == 200, await response.text()
    assert egress.methods == {"CONNECT"}
    assert {a.target for a in egress.asked} == {
        f"127.0.0.1:{https_targets.token_server.port}",
        f"127.0.0.1:{https_targets.upstream_server.port}",
    }
    assert [r.raw_path for r in upstream.received] == [API_PATH]
    assert upstream.tokens_seen == ["token-1"]
    assert_nothing_in_clear(egress, upstream)


async def test_no_proxy_sends_both_around_the_egress_proxy(
    aiohttp_client, https_targets: Targets, ca_file: Path
) -> None:  # type: ignore[no-untyped-def]
    async with forward_proxy() as egress:
        env = {"HTTPS_PROXY": egress.url, "NO_PROXY": "localhost,127.0.0.1"}
        client = await proxy_client(
            aiohttp_client, https_targets, env, upstream_ca_file=str(ca_file)
        )

        response = await client.get(API_PATH)

        assert response.status == 200
    assert egress.asked == []


async def test_no_proxy_for_one_port_bypasses_only_that_target(
    aiohttp_client, https_targets: Targets, ca_file: Path
) -> None:  # type: ignore[no-untyped-def]
    token_port = https_targets.token_server.port
    async with forward_proxy() as egress:
        env = {"https_proxy": egress.url, "no_proxy": f"127.0.0.1:{token_port}"}
        client = await proxy_client(
            aiohttp_client, https_targets, env, upstream_ca_file=str(ca_file)
        )

        assert (await client.get(API_PATH)).status == 200
    assert [a.target for a in egress.asked] == [f"127.0.0.1:{https_targets.upstream_server.port}"]


async def test_http_targets_go_through_http_proxy_with_a_warning_that_it_sees_them(
    aiohttp_client,
    http_targets: Targets,
    upstream: FakeUpstream,
    caplog: pytest.LogCaptureFixture,
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, "proxy.egress")
    async with forward_proxy() as egress:
        client = await proxy_client(aiohttp_client, http_targets, {"HTTP_PROXY": egress.url})

        response = await client.get(API_PATH)

        assert response.status == 200
    token_url = http_targets.token_server.make_url("/connect/token")
    assert [(a.method, a.target) for a in egress.asked] == [
        ("POST", str(token_url)),
        ("GET", str(http_targets.upstream_server.make_url(API_PATH))),
    ]
    assert upstream.tokens_seen == ["token-1"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("sees those requests in clear" in w for w in warnings)


async def test_https_proxy_is_not_used_for_http_targets(
    aiohttp_client, http_targets: Targets
) -> None:  # type: ignore[no-untyped-def]
    async with forward_proxy() as egress:
        client = await proxy_client(aiohttp_client, http_targets, {"HTTPS_PROXY": egress.url})

        assert (await client.get(API_PATH)).status == 200
    assert egress.asked == []


async def test_credentials_in_the_proxy_url_reach_the_egress_proxy_and_nothing_else(
    aiohttp_client,
    https_targets: Targets,
    upstream: FakeUpstream,
    ca_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    expected = "Basic " + base64.b64encode(b"corp\\user:p@ss").decode()
    async with forward_proxy(require_auth=expected) as egress:
        proxy_url = f"http://corp%5Cuser:p%40ss@127.0.0.1:{egress.port}"
        client = await proxy_client(
            aiohttp_client, https_targets, {"HTTPS_PROXY": proxy_url}, upstream_ca_file=str(ca_file)
        )

        response = await client.get(API_PATH)

        assert response.status == 200, await response.text()
    assert [a.headers.get("proxy-authorization") for a in egress.asked] == [expected, expected]
    assert "Proxy-Authorization" not in upstream.received[0].headers
    assert f"through the egress proxy http://127.0.0.1:{egress.port} (HTTPS_PROXY)" in caplog.text
    assert "p%40ss" not in caplog.text
    assert "p@ss" not in caplog.text


async def test_an_egress_proxy_that_refuses_the_tunnel_makes_the_token_unavailable(
    aiohttp_client, https_targets: Targets, endpoint: FakeTokenEndpoint, ca_file: Path
) -> None:  # type: ignore[no-untyped-def]
    async with forward_proxy(require_auth="Basic nobody-has-this") as egress:
        client = await proxy_client(
            aiohttp_client,
            https_targets,
            {"HTTPS_PROXY": egress.url},
            upstream_ca_file=str(ca_file),
        )

        response = await client.get(API_PATH)

        assert response.status == 503
        assert "the token endpoint is unreachable" in (await response.json())["detail"]
    assert egress.methods == {"CONNECT"}
    assert endpoint.requests == []


# host, port, NO_PROXY entries, bypassed?
BYPASS_RULES = [
    ("api.example", 443, [], False),
    ("api.example", 443, ["*"], True),
    ("api.example", 443, ["api.example"], True),
    ("API.Example", 443, ["api.example"], True),
    ("api.example", 443, [" other.example ", " api.example "], True),
    ("cloud.api.example", 443, ["api.example"], True),
    ("cloud.api.example", 443, [".api.example"], True),
    ("api.example", 443, [".api.example"], True),
    ("notapi.example", 443, ["api.example"], False),
    ("api.example", 443, ["example"], True),
    ("api.example", 443, ["api.example:443"], True),
    ("api.example", 8443, ["api.example:443"], False),
    ("127.0.0.1", 80, ["127.0.0.1"], True),
    ("127.0.0.2", 80, ["127.0.0.1"], False),
    ("10.1.2.3", 443, ["10.0.0.0/8"], True),
    ("11.1.2.3", 443, ["10.0.0.0/8"], False),
    ("10.1.2.3", 443, ["10.0.0.0/8:443"], True),
    ("10.1.2.3", 80, ["10.0.0.0/8:443"], False),
    ("api.example", 443, ["10.0.0.0/8"], False),
    ("::1", 443, ["::1"], True),
    ("[::1]", 443, ["::1"], True),
    ("::1", 443, ["[::1]:443"], True),
    ("::1", 80, ["[::1]:443"], False),
    ("fd00::5", 443, ["fd00::/8"], True),
    ("api.example", 443, ["", " ", "."], False),
]


@pytest.mark.parametrize(("host", "port", "no_proxy", "bypassed"), BYPASS_RULES)
def test_no_proxy_entries(host: str, port: int, no_proxy: list[str], bypassed: bool) -> None:
    assert bypasses(host, port, no_proxy) is bypassed


# environment, target -> the egress proxy chosen (None: directly)
ROUTES = [
    ({}, "https://api.example", None),
    ({"HTTPS_PROXY": "http://p.example:3128"}, "https://api.example", "http://p.example:3128"),
    ({"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"}, "https://a.x", "http://lower:1"),
    ({"https_proxy": "", "HTTPS_PROXY": "http://upper:2"}, "https://a.x", None),
    ({"HTTPS_PROXY": "  "}, "https://a.x", None),
    ({"HTTPS_PROXY": "p.example:3128"}, "https://a.x", "http://p.example:3128"),
    ({"HTTPS_PROXY": "http://p.example:3128/"}, "https://a.x", "http://p.example:3128"),
    ({"HTTPS_PROXY": "http://p.example:3128"}, "http://a.x", None),
    ({"HTTP_PROXY": "http://p.example:3128"}, "http://a.x", "http://p.example:3128"),
    ({"HTTP_PROXY": "http://p.example:3128"}, "https://a.x", None),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "a.x"}, "https://a.x", None),
    ({"HTTPS_PROXY": "http://p:1", "no_proxy": "b.x", "NO_PROXY": "a.x"}, "https://a.x", "http://p:1"),
]  # fmt: skip


@pytest.mark.parametrize(("env", "target", "chosen"), ROUTES)
def test_the_egress_proxy_chosen_for_a_target(
    env: dict[str, str], target: str, chosen: str | None
) -> None:
    route = EgressProxies.from_environment(env).route(URL(target))

    assert route.proxy == (URL(chosen) if chosen else None)


def test_a_route_names_the_variable_and_shows_no_credentials() -> None:
    route = EgressProxies.from_environment({"https_proxy": "http://u:pw@p.example:3128/x"}).route(
        URL("https://api.example")
    )

    assert (route.proxy, route.variable) == (URL("http://u:pw@p.example:3128"), "https_proxy")
    assert route.shown == "http://p.example:3128"
    assert "pw" not in repr(route)


def test_no_egress_proxy_means_directly() -> None:
    route = EgressProxies.from_environment({}).route(URL("https://api.example"))

    assert route == DIRECTLY
    assert route.proxy is None


@pytest.mark.parametrize(
    "value",
    [
        "https://u:hunter2@p.example:3128",
        "socks5://u:hunter2@p.example:1080",
        "http://",
        "http://[",
    ],
)
def test_an_unusable_proxy_variable_is_a_config_error_that_does_not_repeat_it(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        EgressProxies.from_environment({"HTTPS_PROXY": value})

    message = str(caught.value)
    assert message.startswith("HTTPS_PROXY is not an http:// proxy URL")
    assert "hunter2" not in message


async def test_run_takes_the_egress_variables_from_its_environment(
    https_targets: Targets, upstream: FakeUpstream, ca_file: Path
) -> None:
    port = free_port()
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in https_targets.settings().items()]
    async with forward_proxy() as egress:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy", "run", f"--listen=127.0.0.1:{port}", *flags,
            f"--upstream-ca-file={ca_file}",
            env=base_env(SMARTDOC_CLIENT_SECRET=SECRET, HTTPS_PROXY=egress.url),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        proxy = Proxy(process, port)
        try:
            await wait_until_healthy(proxy)
            async with (
                aiohttp.ClientSession() as session,
                session.get(proxy.url + API_PATH) as response,
            ):
                assert response.status == 200
        finally:
            process.terminate()
            assert await proxy.exited(within_seconds=10) == 0
    assert egress.methods == {"CONNECT"}
    assert len({a.target for a in egress.asked}) == 2
    assert_nothing_in_clear(egress, upstream)
    assert f"through the egress proxy {egress.url} (HTTPS_PROXY)" in proxy.err


async def test_check_goes_through_the_egress_proxy_and_trusts_the_ca_file(
    https_targets: Targets, ca_file: Path
) -> None:
    token_url = str(https_targets.token_server.make_url("/connect/token"))
    async with forward_proxy() as egress:
        env = base_env(SMARTDOC_CLIENT_SECRET=SECRET, HTTPS_PROXY=egress.url)
        args = ("check", "--client-id", CLIENT_ID, "--token-url", token_url)

        trusted = await run_cli(*args, "--upstream-ca-file", str(ca_file), env=env)
        refused = await run_cli(*args, env=env)

    assert trusted[0] == 0, trusted
    assert trusted[1].startswith(f"OK: {token_url} issued a Bearer token")
    assert refused[0] == 1
    assert refused[1].startswith("FAILED: the token endpoint failed TLS verification: ")
    port = https_targets.token_server.port
    assert f"  the certificate of 127.0.0.1:{port} is not trusted (" in refused[1]
    assert [a.method for a in egress.asked] == ["CONNECT", "CONNECT"]
    assert SECRET.encode() not in egress.seen


async def failure(url: str, proxy: str | None = None) -> BaseException:
    """What a real request to ``url`` (through ``proxy``) raised."""
    async with aiohttp.ClientSession(proxy=proxy) as session:
        with pytest.raises(aiohttp.ClientError) as caught:
            await session.get(url)
    return caught.value


async def test_explain_names_an_untrusted_certificate_and_the_option_that_fixes_it(
    https_targets: Targets,
) -> None:
    port = https_targets.upstream_server.port

    explained = explain(await failure(f"https://127.0.0.1:{port}/"))

    assert explained == (
        f"the certificate of 127.0.0.1:{port} is not trusted (unable to get local issuer "
        "certificate); behind an egress proxy that inspects TLS, name its CA with "
        "--upstream-ca-file"
    )


async def test_explain_names_an_egress_proxy_that_is_not_there(https_targets: Targets) -> None:
    port, nobody = https_targets.upstream_server.port, free_port()

    explained = explain(await failure(f"https://127.0.0.1:{port}/", f"http://127.0.0.1:{nobody}"))

    assert explained is not None
    assert explained.startswith(f"cannot connect to the egress proxy 127.0.0.1:{nobody} (")


async def test_explain_names_an_egress_proxy_s_refusal_without_its_credentials(
    https_targets: Targets,
) -> None:
    port = https_targets.upstream_server.port
    async with forward_proxy(require_auth="Basic other") as egress:
        proxy = f"http://user:hunter2@127.0.0.1:{egress.port}"

        explained = explain(await failure(f"https://127.0.0.1:{port}/", proxy))

    assert explained == "the egress proxy refused the tunnel: 407 Proxy Authentication Required"


async def test_explain_names_a_target_that_is_not_there() -> None:
    nobody = free_port()

    explained = explain(await failure(f"https://127.0.0.1:{nobody}/"))

    assert explained is not None
    assert explained.startswith(f"cannot connect to 127.0.0.1:{nobody} (")


def test_explain_says_nothing_of_other_failures() -> None:
    assert explain(None) is None
    assert explain(TimeoutError()) is None
