"""Shared helpers for the stand-in tests: a movable clock, a started stand-in, small waits.

Not a conftest: test modules import what they use, so each file shows where its helpers come from.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from proxy.standin import StandinSettings, create_standin_app
from tests.fakes import child_env

API = "/api/v1.0/external"
START_WALL = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def token_form(client_id: str, client_secret: str) -> dict[str, str]:
    """A client-credentials token request body for these credentials."""
    return {
        "grant_type": "client_credentials",
        "scope": "WebAPI",
        "client_id": client_id,
        "client_secret": client_secret,
    }


TOKEN_FORM = token_form("demo-client", "demo-secret")
HUGE_ID = "9" * 5000
"""A path id with more digits than int() converts (4300), let alone an Int32 holds."""

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@dataclass
class FakeClock:
    """A monotonic clock and a matching UTC wall clock that only move when told to."""

    now: float = 1000.0
    start: float = field(default=1000.0, init=False)

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return START_WALL + timedelta(seconds=self.now - self.start)

    def advance(self, seconds: float) -> None:
        self.now += seconds


def arabic_indic(number: int) -> str:
    """`number` in Arabic-Indic digits, which a regex `\\d` matches and int() reads."""
    return "".join(chr(0x0660 + int(digit)) for digit in str(number))


def basic(client_id: str, secret: str) -> str:
    """An HTTP Basic `Authorization` value."""
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclass
class Standin:
    """A running stand-in with its test client and clock."""

    client: TestClient[web.Request, web.Application]
    clock: FakeClock
    app: web.Application
    _token: str | None = None

    async def token(self, form: dict[str, str] = TOKEN_FORM) -> str:
        """A fresh access token from the token endpoint (for the demo client by default)."""
        response = await self.client.post("/connect/token", data=form)
        assert response.status == 200, await response.text()
        return str((await response.json())["access_token"])

    async def authorize(self) -> None:
        """Fetch the token `api` uses now, so that no later `api` call makes a token request."""
        self._token = await self.token()

    async def authorize_as(self, form: dict[str, str]) -> None:
        """From now on, `api` calls with a token for these credentials (another organization)."""
        self._token = await self.token(form)

    async def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call `/api/v1.0/external` + `path` with a valid Bearer token (fetched once)."""
        if self._token is None:
            await self.authorize()
        headers = {"Authorization": f"Bearer {self._token}", **kwargs.pop("headers", {})}
        return await self.client.request(method, API + path, headers=headers, **kwargs)

    async def create_task(self, **body: Any) -> dict[str, Any]:
        """Create a task (default URL unless `context` is given) and return its status object."""
        body.setdefault("context", {"url": "https://files.example.com/invoice.pdf"})
        response = await self.api("POST", "/sdtask/process", json=body)
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result

    async def status(self, task_id: int) -> dict[str, Any]:
        response = await self.api("GET", f"/sdtask/status?taskId={task_id}")
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result


async def start_standin(
    aiohttp_client: ClientFactory,
    settings: StandinSettings | None = None,
    clock: FakeClock | None = None,
) -> Standin:
    """Create and serve a stand-in on loopback, with an injected clock."""
    clock = clock or FakeClock()
    app = create_standin_app(
        settings or StandinSettings(), clock=clock.monotonic, wall_clock=clock.wall
    )
    return Standin(await aiohttp_client(app), clock, app)


async def wait_for(condition: Callable[[], Awaitable[bool]], within_seconds: float = 3.0) -> None:
    """Poll `condition` every 10 ms until it holds; fail the test after `within_seconds`."""
    deadline = time.monotonic() + within_seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def ok_json(response: Any) -> Any:
    """The JSON body of a 200 response (the test fails on any other status)."""
    assert response.status == 200, await response.text()
    return await response.json()


async def problem(response: Any, status: int) -> dict[str, Any]:
    """The body of a Problem Details response with `status` (the test fails otherwise)."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    assert_problem(body, status)
    return body


async def set_faults(standin: Standin, **switches: Any) -> dict[str, Any]:
    """Change fault switches through the admin path; returns the switches shown after."""
    response = await standin.client.post("/_standin/faults", json=switches)
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def token_status(standin: Standin) -> int:
    """The status of one token request with the demo credentials."""
    return (await standin.client.post("/connect/token", data=TOKEN_FORM)).status


def assert_problem(body: dict[str, Any], status: int) -> None:
    """`body` is an ASP.NET Problem Details document for `status`."""
    assert body["status"] == status
    assert body["type"].startswith("https://tools.ietf.org/html/")
    assert body["title"]
    assert body["traceId"].startswith("00-")


PROCESS_TIMEOUT_SECONDS = 20


async def run_standin_command(*args: str) -> tuple[int, str, str]:
    """`python -m proxy standin ARGS` as a real process that ends on its own (a refused start):
    its exit status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "standin", *args,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), PROCESS_TIMEOUT_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def wait_until_serving(base_url: str) -> None:
    """Wait until a stand-in started in another process answers on `base_url`."""

    async def answers() -> bool:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{base_url}/_standin/faults"),
            ):
                return True
        except aiohttp.ClientConnectionError:
            return False

    await wait_for(answers, PROCESS_TIMEOUT_SECONDS)
