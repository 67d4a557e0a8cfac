"""``smartdoc-proxy run`` as a real process: what it refuses at start-up, HTTPS for clients, the
separate metrics address, SIGHUP reload, and the secret's expiry date."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import sys
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web

from tests.fakes import (
    SECRET,
    FakeTokenEndpoint,
    FakeUpstream,
    child_env,
    free_port,
    token_app,
    upstream_app,
)

ROOT = Path(__file__).resolve().parent.parent
ALICE, BOB = "alice-key-0123456789abcdef", "bob-key-fedcba9876543210"


@dataclass
class Running:
    process: asyncio.subprocess.Process
    port: int
    scheme: str = "http"
    err: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"


async def _drain(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode(errors="replace"))


async def start(*argv: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", *argv, cwd=ROOT,
        env=child_env(**(env or {})),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def finished(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await start(*argv, env=env)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@dataclass
class Fakes:
    upstream: FakeUpstream
    endpoint: FakeTokenEndpoint
    upstream_url: str
    token_url: str


@pytest.fixture
async def fakes(aiohttp_server, endpoint: FakeTokenEndpoint, upstream: FakeUpstream) -> Fakes:  # type: ignore[no-untyped-def]
    token_server = await aiohttp_server(token_app(endpoint))
    upstream_server = await aiohttp_server(upstream_app(upstream))
    return Fakes(
        upstream,
        endpoint,
        str(upstream_server.make_url("/")).rstrip("/"),
        str(token_server.make_url("/connect/token")),
    )


def _base(fakes: Fakes, port: int) -> list[str]:
    return ["run", "--listen", f"127.0.0.1:{port}", "--upstream", fakes.upstream_url,
            "--token-url", fakes.token_url, "--client-id", "x"]  # fmt: skip


@contextlib.asynccontextmanager
async def running(
    fakes: Fakes, *flags: str, scheme: str = "http", ssl_context: ssl.SSLContext | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Running]:  # fmt: skip
    port = free_port()
    process = await start(
        *_base(fakes, port), *flags, env={"SMARTDOC_CLIENT_SECRET": SECRET} | (env or {})
    )
    proxy = Running(process, port, scheme)
    assert process.stderr is not None
    reader = asyncio.create_task(_drain(process.stderr, proxy.err))
    try:
        await _healthy(proxy, ssl_context)
        yield proxy
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), 10)
        await reader


async def _healthy(proxy: Running, ssl_context: ssl.SSLContext | None) -> None:
    for _ in range(200):
        if proxy.process.returncode is not None:
            pytest.fail(f"the proxy exited: {''.join(proxy.err)}")
        with contextlib.suppress(aiohttp.ClientError):
            status, _ = await fetch(proxy.url + "/_proxy/healthz", ssl_context=ssl_context)
            if status == 200:
                return
        await asyncio.sleep(0.05)
    pytest.fail("the proxy never became healthy")


async def fetch(
    url: str, headers: dict[str, str] | None = None, ssl_context: ssl.SSLContext | None = None
) -> tuple[int, str]:
    connector = aiohttp.TCPConnector(force_close=True, ssl=ssl_context or True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, headers=headers) as response,
    ):
        return response.status, await response.text()


async def status_with_key(proxy: Running, key: str) -> int:
    """The status of an API request through ``proxy`` presenting ``key``."""
    return (await fetch(proxy.url + "/api/x", headers={"X-Proxy-Key": key}))[0]


async def _eventually(probe: object, expected: object, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await probe() == expected:  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never became {expected}")


async def test_a_busy_port_is_one_line_and_no_token_is_fetched(fakes: Fakes) -> None:
    port = free_port()
    with contextlib.closing(__import__("socket").socket()) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        status, _, err = await finished(*_base(fakes, port), env={"SMARTDOC_CLIENT_SECRET": SECRET})
    assert status == 2
    assert err.strip().count("\n") == 0, err
    assert "cannot listen on" in err
    assert fakes.endpoint.requests == []


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--listen", "0.0.0.0:18099"], "--allow"),
        (["--upstream", "http://api.example.invalid"], "--allow-insecure-upstream"),
        (["--token-url", "http://id.example.invalid/connect/token"], "--allow-insecure-upstream"),
    ],
)
async def test_an_open_door_or_a_cleartext_upstream_refuses_to_start(
    flags: list[str], named: str
) -> None:
    status, _, err = await finished(
        "run", "--client-id", "x", *flags, env={"SMARTDOC_CLIENT_SECRET": SECRET}
    )
    assert status == 2
    assert all(line.startswith("smartdoc-proxy: ") for line in err.strip().splitlines()), err
    assert named in err


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_tls_for_clients_serves_https_and_refuses_old_protocols(
    fakes: Fakes, ca: trustme.CA, tmp_path: Path
) -> None:
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    flags = ("--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file))
    async with running(fakes, *flags, scheme="https", ssl_context=trusting) as proxy:
        assert (await fetch(proxy.url + "/api/x", ssl_context=trusting))[0] == 200
        old = ssl.create_default_context()
        ca.configure_trust(old)
        with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(aiohttp.ClientError):
            await fetch(proxy.url + "/api/x", ssl_context=old)


async def test_the_metrics_address_serves_metrics_without_a_key_and_nothing_else(
    fakes: Fakes, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"alice {ALICE}\n")
    metrics_port = free_port()
    flags = ("--inbound-keys-file", str(keys), "--metrics-listen", f"127.0.0.1:{metrics_port}")
    async with running(fakes, *flags) as proxy:
        assert (await fetch(proxy.url + "/_proxy/metrics"))[0] == 401
        status, text = await fetch(f"http://127.0.0.1:{metrics_port}/_proxy/metrics")
        assert status == 200
        assert "smartdoc_proxy_requests_total" in text
        assert (await fetch(f"http://127.0.0.1:{metrics_port}/api/x"))[0] == 404
        assert fakes.upstream.received == []


async def test_sighup_reloads_the_keys_and_a_bad_reload_keeps_the_running_ones(
    fakes: Fakes, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"alice {ALICE}\n")
    async with running(fakes, "--inbound-keys-file", str(keys)) as proxy:
        assert await status_with_key(proxy, ALICE) == 200
        assert await status_with_key(proxy, BOB) == 401
        keys.write_text(f"bob {BOB}\n")
        proxy.process.send_signal(signal.SIGHUP)
        await _eventually(lambda: status_with_key(proxy, BOB), 200)
        assert await status_with_key(proxy, ALICE) == 401
        keys.write_text("three words here\n")
        proxy.process.send_signal(signal.SIGHUP)
        await _eventually(lambda: _said(proxy, "reload failed"), True)
        assert await status_with_key(proxy, BOB) == 200


async def _said(proxy: Running, text: str) -> bool:
    return any(text in line for line in proxy.err)


async def test_sighup_logs_a_change_that_needs_a_restart(fakes: Fakes, tmp_path: Path) -> None:
    toml = tmp_path / "proxy.toml"
    toml.write_text("upstream_pool_size = 10\n")
    async with running(fakes, "--config", str(toml)) as proxy:
        toml.write_text("upstream_pool_size = 20\n")
        proxy.process.send_signal(signal.SIGHUP)
        await _eventually(lambda: _said(proxy, "upstream_pool_size changed"), True)
        assert (await fetch(proxy.url + "/api/x"))[0] == 200


def _picky_token_app(secret_file: Path, seen: list[float]) -> web.Application:
    """A token endpoint that accepts only the secret now in ``secret_file``'s sibling
    ``accepted`` file, and records when each request came."""

    async def handle(request: web.Request) -> web.Response:
        form = await request.post()
        seen.append(asyncio.get_running_loop().time())
        accepted = (secret_file.parent / "accepted").read_text()
        if form.get("client_secret") != accepted:
            return web.json_response({"error": "invalid_client"}, status=400)
        return web.json_response({"access_token": "t", "expires_in": 3600})

    app = web.Application()
    app.router.add_post("/connect/token", handle)
    return app


async def test_sighup_ends_a_backoff_so_a_fixed_secret_is_tried_at_once(
    fakes: Fakes,
    tmp_path: Path,
    aiohttp_server,  # type: ignore[no-untyped-def]
) -> None:
    secret_file, seen = tmp_path / "secret", []  # type: ignore[var-annotated]
    secret_file.write_text("old-secret")
    (tmp_path / "accepted").write_text("new-secret")
    server = await aiohttp_server(_picky_token_app(secret_file, seen))
    fakes.token_url = str(server.make_url("/connect/token"))
    async with running(fakes, "--client-secret-file", str(secret_file),
                       env={"SMARTDOC_CLIENT_SECRET": ""}) as proxy:  # fmt: skip
        await _eventually(lambda: _count(seen), 2, seconds=5)
        # The second failure set a backoff of at least 1 s.
        secret_file.write_text("new-secret")
        hup = asyncio.get_running_loop().time()
        proxy.process.send_signal(signal.SIGHUP)
        await _eventually(lambda: _count(seen), 3, seconds=3)
        assert seen[2] - hup < 0.5
        assert (await fetch(proxy.url + "/api/x"))[0] == 200


async def _count(items: list[float]) -> int:
    return len(items)


async def test_the_secret_expiry_date_is_warned_about_exported_and_checked(
    fakes: Fakes,
) -> None:
    expires = (datetime.now(UTC).date() + timedelta(days=10)).isoformat()
    async with running(fakes, "--secret-expires", expires) as proxy:
        text = (await fetch(proxy.url + "/_proxy/metrics"))[1]
        assert "smartdoc_proxy_secret_expires_in_days 10.0" in text
        await _eventually(lambda: _said(proxy, f"expires on {expires}, in 10 days"), True)
    status, out, _ = await finished(
        "check", "--token-url", fakes.token_url, "--client-id", "x", "--secret-expires", expires,
        env={"SMARTDOC_CLIENT_SECRET": SECRET},
    )  # fmt: skip
    assert status == 0
    assert f"expires on {expires}: 10 days left" in out


async def test_start_up_says_what_runs_and_shutdown_says_when_it_is_done(fakes: Fakes) -> None:
    async with running(fakes, "--allow", "10.0.0.0/8") as proxy:
        pass
    text = "".join(proxy.err)
    assert "client id 'x'" in text
    assert "10.0.0.0/8" in text
    assert fakes.token_url in text
    assert SECRET not in text
    assert "SIGTERM received" in text
    assert "stopped:" in text


async def test_run_listen_port_zero_picks_a_free_port_and_says_which(fakes: Fakes) -> None:
    process = await start(
        "run", "--listen", "127.0.0.1:0", "--upstream", fakes.upstream_url, "--token-url",
        fakes.token_url, "--client-id", "x", env={"SMARTDOC_CLIENT_SECRET": SECRET},
    )  # fmt: skip
    assert process.stderr is not None
    try:
        line = ""
        while "listening on" not in line:
            line = (await asyncio.wait_for(process.stderr.readline(), 10)).decode()
            assert line, "exited before listening"
        port = int(line.split("listening on http://127.0.0.1:")[1].split(":")[0])
        assert port != 0
        assert (await fetch(f"http://127.0.0.1:{port}/_proxy/healthz"))[0] == 200
    finally:
        process.terminate()
        await process.communicate()


async def test_a_changed_keys_file_is_reloaded_without_a_signal(
    fakes: Fakes, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"alice {ALICE}\n")
    async with running(fakes, "--inbound-keys-file", str(keys)) as proxy:
        assert await status_with_key(proxy, BOB) == 401
        # As a Kubernetes Secret update does it: a new file swapped in under the same path.
        swapped = tmp_path / "keys.new"
        swapped.write_text(f"bob {BOB}\n")
        swapped.replace(keys)
        await _eventually(lambda: status_with_key(proxy, BOB), 200, seconds=8)
        assert await status_with_key(proxy, ALICE) == 401


async def test_a_busy_port_in_the_demo_says_how_to_choose_another() -> None:
    port = free_port()
    with contextlib.closing(__import__("socket").socket()) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        status, _, err = await finished("demo", "--listen", f"127.0.0.1:{port}")
    assert status == 2
    assert "cannot listen on" in err
    assert "demo --listen 127.0.0.1:PORT" in err
    assert "Traceback" not in err


async def test_demo_listen_port_zero_prints_the_port_it_got() -> None:
    process = await start("demo", "--listen", "127.0.0.1:0")
    assert process.stdout is not None
    try:
        banner = ""
        while "curl" not in banner:
            line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
            assert line, "the demo exited before its banner"
            banner += line
        curl = next(line for line in banner.splitlines() if "curl" in line)
        url = curl.split()[-1]
        assert ":0/" not in url
        assert (await fetch(url))[0] == 200
    finally:
        process.terminate()
        await process.communicate()


async def test_keys_over_plain_http_beyond_loopback_are_warned_about(
    fakes: Fakes, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"alice {ALICE}\n")
    port = free_port("0.0.0.0")  # noqa: S104 (the non-loopback address under test)
    process = await start(
        *_base(fakes, port)[:2], f"0.0.0.0:{port}", *_base(fakes, port)[3:],
        "--inbound-keys-file", str(keys), env={"SMARTDOC_CLIENT_SECRET": SECRET},
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []
    try:
        while not any("listening on" in line for line in lines):
            line = (await asyncio.wait_for(process.stderr.readline(), 10)).decode()
            assert line, "".join(lines)
            lines.append(line)
        await asyncio.sleep(0.2)
    finally:
        process.terminate()
        _, rest = await process.communicate()
    text = "".join(lines) + rest.decode()
    warning = next(line for line in text.splitlines() if "travel in clear" in line)
    assert "WARNING" in warning
    assert "--tls-cert-file" in warning
    assert ALICE not in text
