"""Several organizations end to end: the proxy in front of the stand-in serving the same
organizations, ``smartdoc-proxy run`` with SIGHUP as a real process, ``check`` and the demo."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
from pathlib import Path

import pytest

from proxy import demo
from proxy.config import Listen, load_config
from proxy.standin import StandinSettings, create_standin_app
from proxy.standin.settings import OrganizationSettings
from tests.fakes import FakeTokenEndpoint, free_port, proxy_command, token_app
from tests.organization_stack import fetch, serving
from tests.test_cli import base_env, run_cli

API = "/api/v1.0/external"
GLOBEX_KEY = "globex-key-0123456789abcdef"
TIMEOUT_SECONDS = 20
OLD_GLOBEX_SECRET = "rotated-away-secret"


async def test_each_address_and_key_sees_only_its_organization_s_data_on_the_stand_in(
    aiohttp_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    settings = StandinSettings(
        organizations=(
            OrganizationSettings("acme", "acme-client", "acme-secret"),
            OrganizationSettings("globex", "globex-client", "globex-secret"),
        )
    )
    standin = await aiohttp_server(create_standin_app(settings))
    keys = tmp_path / "globex-keys"
    keys.write_text(f"reports {GLOBEX_KEY}\n", encoding="utf-8")
    config = load_config(
        {"listen": "127.0.0.1:0", "upstream": str(standin.make_url("/"))},
        {},
        organizations={
            "acme": {"client_id": "acme-client", "client_secret": "acme-secret",
                     "listen": "127.0.0.1:0"},
            "globex": {"client_id": "globex-client", "client_secret": "globex-secret",
                       "inbound_keys_file": str(keys)},
        },
    )  # fmt: skip
    async with serving(config) as (_, sockets):
        acme, shared = (
            f"http://{sockets.organizations['acme'].listen}",
            f"http://{sockets.main.listen}",
        )
        as_globex = {"X-Proxy-Key": GLOBEX_KEY}

        workspaces = await fetch("GET", f"{acme}{API}/sdworkspace/CurrentWorkspaces", {})
        theirs = await fetch("GET", f"{shared}{API}/sdworkspace/CurrentWorkspaces", as_globex)
        task = {"displayName": "invoice", "context": {"url": "https://example.test/a.pdf"}}
        created = await fetch("POST", f"{acme}{API}/sdtask/process", {}, json_body=task)
        task_id = json.loads(created.text)["taskId"]
        mine = await fetch("GET", f"{acme}{API}/sdtask/status?taskId={task_id}", {})
        not_theirs = await fetch("GET", f"{shared}{API}/sdtask/status?taskId={task_id}", as_globex)

    assert [w["tenantId"] for w in json.loads(workspaces.text)] == [1]
    assert [w["tenantId"] for w in json.loads(theirs.text)] == [2]
    assert (created.status, mine.status, not_theirs.status) == (200, 200, 404)


async def test_run_serves_each_organization_on_its_address_and_sighup_fixes_a_secret(
    aiohttp_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    ports = {"acme": free_port(), "globex": free_port()}
    own = {name: [f'listen = "127.0.0.1:{port}"'] for name, port in ports.items()}
    endpoints, toml = await _organizations(aiohttp_server, tmp_path, OLD_GLOBEX_SECRET, own)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "run", "--config", str(toml), "--listen", "127.0.0.1:0",
        "--upstream", "http://127.0.0.1:9", env=base_env(), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        said = await _read_until(process.stderr, "organization globex:")
        # Two rejections: the next attempt is 1 to 2 s away.
        await _until(lambda: len(endpoints["globex"].requests) == 2)
        acme = await _status(f"http://127.0.0.1:{ports['acme']}/_proxy/readyz")
        globex = await _status(f"http://127.0.0.1:{ports['globex']}/_proxy/readyz/globex")
        (tmp_path / "globex-secret").write_text("globex-secret")
        hup = asyncio.get_running_loop().time()
        process.send_signal(signal.SIGHUP)
        await _until(lambda: endpoints["globex"].issued == ["globex-1"])
        recovered_in = asyncio.get_running_loop().time() - hup
        process.terminate()
        assert await asyncio.wait_for(process.wait(), TIMEOUT_SECONDS) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert f"its own address http://127.0.0.1:{ports['acme']}" in said
    assert "for 2 organizations" in said
    assert (acme, globex) == (200, 503)
    assert recovered_in < 0.5
    assert endpoints["acme"].issued == ["acme-1"]


async def test_check_tries_every_organization_one_line_each_or_the_one_named(
    aiohttp_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    _, config = await _organizations(aiohttp_server, tmp_path, OLD_GLOBEX_SECRET)

    every = await run_cli("check", "--config", str(config), env=base_env())
    acme = await run_cli("check", "--config", str(config), "--organization", "acme", env=base_env())
    unknown = await run_cli("check", "--config", str(config), "--organization", "x", env=base_env())

    status, out, _ = every
    acme_line, globex_line = out.splitlines()
    assert status == 1
    assert acme_line.startswith("acme: OK: ")
    assert "client id 'acme-client'" in acme_line
    assert globex_line.startswith(
        "globex: FAILED: the token endpoint answered 400 (invalid_client)"
    )
    assert (
        "; the token endpoint said: invalid_client; the client id or secret is wrong" in globex_line
    )
    assert (acme[0], acme[1].splitlines()) == (0, [acme_line])
    assert unknown[0] == 2
    assert unknown[2].startswith("smartdoc-proxy: --organization: there is no organization 'x'")
    assert OLD_GLOBEX_SECRET not in out


def test_the_demo_gives_each_organization_an_address_from_the_listen_port_on() -> None:
    prepared = demo.prepare_organizations("127.0.0.1:8080", 3)
    try:
        banner = demo.banner(prepared, Listen("127.0.0.1", 8083), {"org2": Listen("127.0.0.1", 9)})
    finally:
        prepared.standin_socket.close()

    config = prepared.config
    assert [(o.name, o.client_id) for o in config.organizations] == [
        ("org1", "org1-client"), ("org2", "org2-client"), ("org3", "org3-client")
    ]  # fmt: skip
    assert [str(o.listen) for o in config.organizations] == [
        "127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8082"
    ]  # fmt: skip
    assert str(config.listen) == "127.0.0.1:8083"
    curls = [line.split()[-1] for line in banner.splitlines() if "curl" in line]
    assert curls == [
        f"http://127.0.0.1:{port}{demo.TRY_PATH}" for port in (8080, 9, 8082)
    ]  # the address each really got


async def test_demo_with_two_organizations_prints_a_curl_line_for_each_that_works() -> None:
    if shutil.which("curl") is None:
        pytest.skip("the curl binary is not installed")
    async with proxy_command("demo", "--organizations", "2", "--listen", "127.0.0.1:0") as process:
        assert process.stdout is not None
        banner = ""
        while "Press Ctrl+C" not in banner:
            line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT_SECONDS)
            assert line, f"the demo exited early: {banner}"
            banner += line.decode()
        tenants = []
        for curl in [line.split() for line in banner.splitlines() if "curl" in line]:
            out = await asyncio.create_subprocess_exec(*curl, stdout=asyncio.subprocess.PIPE)
            answer, _ = await asyncio.wait_for(out.communicate(), TIMEOUT_SECONDS)
            tenants.append(json.loads(answer)[0]["tenantId"])
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), TIMEOUT_SECONDS) == 0
    assert tenants == [1, 2]
    assert "# org1" in banner


async def _organizations(
    aiohttp_server,  # type: ignore[no-untyped-def]
    folder: Path,
    globex_secret: str,
    extra: dict[str, list[str]] | None = None,
) -> tuple[dict[str, FakeTokenEndpoint], Path]:
    """acme and globex, each with a fake token endpoint of its own, in a TOML file; globex's
    secret file holds ``globex_secret``, which its endpoint accepts only if it is its own."""
    endpoints, toml = {}, []
    for name in ("acme", "globex"):
        endpoint = endpoints[name] = FakeTokenEndpoint(prefix=name, secret=f"{name}-secret")
        token_url = (await aiohttp_server(token_app(endpoint))).make_url("/connect/token")
        secret_file = folder / f"{name}-secret"
        secret_file.write_text(globex_secret if name == "globex" else f"{name}-secret")
        toml += [
            f"[organizations.{name}]",
            f'client_id = "{name}-client"',
            f'client_secret_file = "{secret_file}"',
            f'token_url = "{token_url}"',
            *(extra or {}).get(name, []),
        ]
    path = folder / "proxy.toml"
    path.write_text("\n".join(toml) + "\n", encoding="utf-8")
    return endpoints, path


async def _read_until(stream: asyncio.StreamReader, text: str) -> str:
    said = ""
    while text not in said:
        line = await asyncio.wait_for(stream.readline(), TIMEOUT_SECONDS)
        assert line, f"exited: {said}"
        said += line.decode()
    return said


async def _until(condition: object) -> None:
    for _ in range(1000):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


async def _status(url: str) -> int:
    return (await fetch("GET", url, {})).status
