"""The Problem Details boundary: a bug becomes a logged 500 problem, and cancellation passes."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from proxy.standin import StandinSettings, create_standin_app
from proxy.standin.problems import problem_middleware
from tests.standin_helpers import API, ClientFactory, FakeClock, Standin, problem


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
