"""End to end: the proxy in front of the built-in stand-in, driven by clients nobody here
wrote (the curl binary, the requests library, Node's fetch), with no credentials on their side.

Each client creates a task, polls its status, lists tasks and creates and reads a batch. The
requests client also runs across a token expiry the proxy did not see coming and a revocation,
and sees no error: the proxy refreshes and resends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import shutil
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
import requests
from aiohttp.test_utils import TestServer

from proxy.app import create_app
from proxy.config import load_config
from proxy.standin import StandinSettings, create_standin_app
from tests.fakes import FakeClock, free_port, proxy_command

API = "/api/v1.0/external"
CLIENT_TIMEOUT_SECONDS = 20
Call = Callable[[str, str, object | None], Awaitable[tuple[int, object]]]

NODE_FETCH = """
const [method, url, body] = process.argv.slice(1);
const init = { method };
if (body) { init.body = body; init.headers = { "Content-Type": "application/json" }; }
const response = await fetch(url, init);
const text = await response.text();
console.log(JSON.stringify({ status: response.status, body: text }));
"""


@dataclass
class Demo:
    proxy_url: str
    standin: TestServer
    standin_clock: FakeClock
    proxy_clock: FakeClock


@pytest.fixture
async def demo(aiohttp_server) -> Demo:  # type: ignore[no-untyped-def]
    settings = StandinSettings()
    standin_clock, proxy_clock = FakeClock(), FakeClock()
    standin = await aiohttp_server(create_standin_app(settings, clock=standin_clock))
    config = load_config(
        {"upstream": str(standin.make_url("/")), "client_id": settings.client_id},
        {"SMARTDOC_CLIENT_SECRET": settings.client_secret},
    )
    proxy = await aiohttp_server(create_app(config, clock=proxy_clock, sleep=proxy_clock.sleep))
    return Demo(str(proxy.make_url("")).rstrip("/"), standin, standin_clock, proxy_clock)


def _decode(status: int, text: str) -> tuple[int, object]:
    return status, json.loads(text) if text.strip() else None


async def _run(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), CLIENT_TIMEOUT_SECONDS)
    assert process.returncode == 0, err.decode()
    return out.decode()


def curl(base: str) -> Call:
    async def call(method: str, path: str, body: object | None) -> tuple[int, object]:
        data = ["-H", "Content-Type: application/json", "-d", json.dumps(body)] if body else []
        out = await _run("curl", "-sS", "-X", method, *data, "-w", "\n%{http_code}", base + path)
        text, _, status = out.rpartition("\n")
        return _decode(int(status), text)

    return call


def requests_client(base: str) -> Call:
    session = requests.Session()

    def send(method: str, path: str, body: object | None) -> tuple[int, object]:
        response = session.request(method, base + path, json=body, timeout=CLIENT_TIMEOUT_SECONDS)
        return _decode(response.status_code, response.text)

    async def call(method: str, path: str, body: object | None) -> tuple[int, object]:
        return await asyncio.to_thread(send, method, path, body)

    return call


def node_fetch(base: str) -> Call:
    async def call(method: str, path: str, body: object | None) -> tuple[int, object]:
        argv = [method, base + path, json.dumps(body) if body else ""]
        out = await _run("node", "--input-type=module", "-e", NODE_FETCH, *argv)
        answer = json.loads(out)
        return _decode(answer["status"], answer["body"])

    return call


async def _ok(call: Call, method: str, path: str, body: object | None = None) -> dict[str, object]:
    status, answer = await call(method, path, body)
    assert status == 200, (method, path, status, answer)
    assert isinstance(answer, dict | list), answer
    return answer if isinstance(answer, dict) else {"items": answer}


async def scenario(call: Call, demo: Demo, name: str) -> None:
    """Create a task, poll it, list tasks, create and read a batch, all through the proxy."""
    task = await _ok(
        call,
        "POST",
        f"{API}/sdtask/process",
        {"displayName": name, "externalId": name, "context": {"url": "https://example.test/a.pdf"}},
    )
    task_id = task["taskId"]
    assert task["taskStatus"] == 30
    seen = []
    for _ in range(5):
        demo.standin_clock.advance(1.0)
        status = await _ok(call, "GET", f"{API}/sdtask/status?taskid={task_id}")
        seen.append(status["taskStatus"])
        if status["taskStatus"] == 34:
            break
    assert seen[-1] == 34, seen
    by_external = await _ok(call, "GET", f"{API}/sdtask/status?externalId={name}")
    assert by_external["taskId"] == task_id
    listing = await _ok(
        call, "GET", f"{API}/sdtask/statuslist?startDate=2000-01-01&workspaceId=1&workspaceId=1"
    )
    assert task_id in [item["taskId"] for item in listing["items"]]  # type: ignore[attr-defined]
    batch = await _ok(call, "POST", f"{API}/sdbatch", {"displayName": f"{name} batch"})
    read = await _ok(call, "GET", f"{API}/sdbatch?batchId={batch['batchId']}")
    assert read["displayName"] == f"{name} batch"


async def test_curl_uses_the_api_through_the_proxy_without_credentials(demo: Demo) -> None:
    if shutil.which("curl") is None:
        pytest.skip("the curl binary is not installed")
    await scenario(curl(demo.proxy_url), demo, "curl-task")


async def test_node_fetch_uses_the_api_through_the_proxy_without_credentials(demo: Demo) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: Node's fetch client not exercised")
    await scenario(node_fetch(demo.proxy_url), demo, "node-task")


async def test_requests_sees_no_error_across_a_token_expiry_and_a_revocation(
    demo: Demo,
) -> None:
    call = requests_client(demo.proxy_url)
    await scenario(call, demo, "requests-task")

    demo.standin_clock.advance(4000)  # the stand-in's token expired; the proxy's clock says not
    await scenario(call, demo, "after-expiry")

    async with (
        aiohttp.ClientSession() as session,
        session.post(demo.standin.make_url("/_standin/revoke-tokens")) as revoked,
    ):
        assert revoked.status in (200, 204)
    # A 401 starts at most one refresh per resend interval: let the proxy's clock pass it.
    demo.proxy_clock.advance(10)
    await scenario(call, demo, "after-revocation")

    demo.standin_clock.advance(4000)  # now both clocks agree the token expired
    demo.proxy_clock.advance(4000)
    await scenario(call, demo, "after-both")

    response = await asyncio.to_thread(
        requests.get, demo.proxy_url + "/_proxy/metrics", timeout=CLIENT_TIMEOUT_SECONDS
    )
    metrics = response.text
    assert "smartdoc_proxy_resends_total 2.0" in metrics
    counted = [line for line in metrics.splitlines() if line.startswith("smartdoc_proxy_requests")]
    assert counted
    assert not [line for line in counted if 'status="401"' in line]


async def _banner(process: asyncio.subprocess.Process) -> list[str]:
    """The demo's banner, up to its last line."""
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("Press Ctrl+C"):
        line = await asyncio.wait_for(process.stdout.readline(), CLIENT_TIMEOUT_SECONDS)
        assert line, f"the demo exited before its banner ended: {lines}"
        lines.append(line.decode().rstrip("\n"))
    return lines


async def _answers(session: aiohttp.ClientSession, method: str, url: str, status: int) -> None:
    """Ask until ``url`` answers ``status``, for at most CLIENT_TIMEOUT_SECONDS."""
    deadline = asyncio.get_running_loop().time() + CLIENT_TIMEOUT_SECONDS
    while True:
        async with session.request(method, url) as response:
            if response.status == status:
                return
        assert asyncio.get_running_loop().time() < deadline, f"{method} {url}: {response.status}"
        await asyncio.sleep(0.1)


async def test_demo_prints_a_curl_line_that_gets_a_real_answer() -> None:
    if shutil.which("curl") is None:
        pytest.skip("the curl binary is not installed")
    async with proxy_command("demo", "--listen", f"127.0.0.1:{free_port()}") as process:
        banner = await _banner(process)
        curl_line = next(line for line in banner if "curl" in line).split()
        answer = json.loads(await _run(*curl_line))
        assert answer[0]["isDefault"] is True
        assert {"workspaceId", "workspaceName", "tenantId"} <= answer[0].keys()
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), CLIENT_TIMEOUT_SECONDS) == 0


async def test_a_token_fault_set_through_the_demo_proxy_is_undone_as_its_banner_says() -> None:
    """Through the proxy, a switch that fails token requests locks the proxy out once its
    token expires: even the request that would turn the switch off gets the proxy's own 502.
    The banner, and that 502, say how to recover: ask the stand-in itself."""
    if shutil.which("curl") is None:
        pytest.skip("the curl binary is not installed")
    port = free_port()
    proxy, listen = f"http://127.0.0.1:{port}", f"127.0.0.1:{port}"
    faults, api = f"{proxy}/_standin/faults", f"{proxy}{API}/sdworkspace/CurrentWorkspaces"
    demo_command = proxy_command("demo", "--listen", listen, "--token-lifetime-seconds", "2")
    async with demo_command as process, aiohttp.ClientSession() as session:
        banner = await _banner(process)
        standin = banner[0].split()[2]
        reset = shlex.split(next(line for line in banner if "-X DELETE" in line), comments=True)
        assert reset == ["curl", "-s", "-X", "DELETE", f"{standin}/_standin/faults"]
        fault = {"fail_token_requests": 5, "fail_token_mode": "invalid_client"}
        async with session.post(faults, json=fault) as switched:
            assert switched.status == 200

        await _answers(session, "GET", api, 502)  # the proxy's token expired; no new one
        async with session.delete(faults) as refused:
            assert refused.status == 502
            problem = await refused.json()
        assert problem["code"] == "invalid_client"
        assert problem["detail"].endswith(
            f"at the stand-in itself (the proxy needs a token to "
            f"forward anything): {shlex.join(reset)}"
        )
        assert "smartdoc-proxy check" not in problem["detail"]  # no advice the demo can't take

        switches = json.loads(await _run(*reset))
        assert switches["fail_token_requests"] == 0
        await _answers(session, "GET", api, 200)  # once the proxy's backoff has ended
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), CLIENT_TIMEOUT_SECONDS) == 0


async def _standin_token(session: aiohttp.ClientSession, base: str) -> dict[str, object]:
    form = {
        "grant_type": "client_credentials",
        "scope": "WebAPI",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
    }
    for _ in range(200):  # until the process listens
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with session.post(base + "/connect/token", data=form) as response:
                token: dict[str, object] = await response.json()
                return token
        await asyncio.sleep(0.05)
    raise AssertionError("the stand-in never answered")


async def test_the_standin_command_serves_the_api_with_its_demo_credentials() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ("standin", "--listen", f"127.0.0.1:{port}", "--token-lifetime-seconds", "120")
    async with proxy_command(*args) as process, aiohttp.ClientSession() as session:
        token = await _standin_token(session, base)
        assert token["expires_in"] == 120
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        path = f"{API}/tenant/availableroles"
        async with session.get(base + path, headers=headers) as response:
            assert response.status == 200
            assert {"name": "Reviewer"} in await response.json()
        async with session.get(base + path) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), CLIENT_TIMEOUT_SECONDS) == 0
