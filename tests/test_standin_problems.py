"""The Problem Details boundary: a bug becomes a logged 500 problem, cancellation passes, and a
body over the 1 MiB limit is a 413 problem."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from proxy.standin import StandinSettings, create_standin_app
from proxy.standin.app import MAX_BODY_BYTES
from proxy.standin.problems import problem_middleware
from tests.standin_helpers import API, ClientFactory, FakeClock, Standin, problem, start_standin


async def explode(request: web.Request) -> web.Response:
    raise RuntimeError("internal detail")


@pytest.mark.parametrize("path", [API + "/explode", "/_standin/explode"])
async def test_an_unexpected_error_is_logged_and_answered_as_a_bare_500_problem(
    aiohttp_client: ClientFactory, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    clock = FakeClock()
    app = create_standin_app(StandinSettings(), clock=clock.monotonic, wall_clock=clock.wall)
    app.router.add_get(path, explode)  # a stand-in for a bug in any handler
    standin = Standin(await aiohttp_client(app), clock, app)
    headers = {"Authorization": f"Bearer {await standin.token()}"}  # the admin path ignores it
    response = await standin.client.get(path, headers=headers)
    body = await problem(response, 500)
    assert body["title"] == "An error occurred while processing your request."
    assert set(body) == {"type", "title", "status", "traceId"}  # nothing about the cause
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.name for record in errors] == ["proxy.standin.problems"]
    assert errors[0].exc_info is not None
    assert errors[0].exc_info[0] is RuntimeError


async def test_cancellation_is_never_turned_into_a_response() -> None:
    async def cancelled(request: web.Request) -> web.StreamResponse:
        raise asyncio.CancelledError

    request = make_mocked_request("GET", API + "/sdbatch?batchId=101")
    with pytest.raises(asyncio.CancelledError):
        await problem_middleware(request, cancelled)


def padded_task(size: int) -> io.BytesIO:
    """A valid CreateTaskRequest of exactly `size` bytes (JSON allows trailing whitespace).

    As a file object: aiohttp's client warns about raw bytes over 1 MiB, and warnings fail tests.
    """
    body = b'{"context": {"url": "https://files.example.com/a.pdf"}}'
    return io.BytesIO(body + b" " * (size - len(body)))


async def test_a_body_of_one_mib_is_read_and_one_byte_more_is_a_413_problem(
    aiohttp_client: ClientFactory,
) -> None:
    assert MAX_BODY_BYTES == 1024 * 1024  # the README names this number
    standin = await start_standin(aiohttp_client)
    headers = {"Content-Type": "application/json"}
    at_limit = padded_task(MAX_BODY_BYTES)
    response = await standin.api("POST", "/sdtask/process", data=at_limit, headers=headers)
    assert response.status == 200, await response.text()
    over = padded_task(MAX_BODY_BYTES + 1)
    response = await standin.api("POST", "/sdtask/process", data=over, headers=headers)
    await problem(response, 413)
