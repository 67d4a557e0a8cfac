"""The `hang` token fault: held until cleared, never holding up shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.standin import StandinSettings, create_standin_app
from tests.standin_helpers import (
    TOKEN_FORM,
    ClientFactory,
    Standin,
    set_faults,
    start_standin,
    token_status,
    wait_for,
)


async def hanging(standin: Standin) -> int:
    shown = await (await standin.client.get("/_standin/faults")).json()
    return int(shown["hanging_token_requests"])


async def hold_one_token_request(standin: Standin) -> asyncio.Future[aiohttp.ClientResponse]:
    """A token request, once the stand-in holds it."""
    held = asyncio.ensure_future(standin.client.post("/connect/token", data=TOKEN_FORM))

    async def one_held() -> bool:
        return await hanging(standin) == 1

    await wait_for(one_held)
    return held


async def test_a_hung_token_request_never_answers_on_its_own(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    await set_faults(standin, fail_token_requests=1, fail_token_mode="hang")
    with pytest.raises(TimeoutError):
        await standin.client.post(
            "/connect/token", data=TOKEN_FORM, timeout=aiohttp.ClientTimeout(total=0.3)
        )
    assert await token_status(standin) == 200  # only one request was due to hang


async def test_clearing_the_hang_lets_held_requests_answer(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    await set_faults(standin, fail_token_requests=5, fail_token_mode="hang")
    held = await hold_one_token_request(standin)
    assert not held.done()
    await set_faults(standin, fail_token_requests=0)
    response = await asyncio.wait_for(held, 2)
    assert response.status == 200
    assert await hanging(standin) == 0


async def test_resetting_all_faults_frees_held_requests(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(
        aiohttp_client, StandinSettings(fail_token_requests=1, fail_token_mode="hang")
    )
    held = await hold_one_token_request(standin)
    reset = await (await standin.client.delete("/_standin/faults")).json()
    assert reset["fail_token_requests"] == 0
    assert (await asyncio.wait_for(held, 2)).status == 200


async def test_switching_the_mode_away_from_hang_frees_held_requests(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    await set_faults(standin, fail_token_requests=5, fail_token_mode="hang")
    held = await hold_one_token_request(standin)
    await set_faults(standin, fail_token_mode="500")  # the count stays: only the mode changes
    assert (await asyncio.wait_for(held, 2)).status == 200
    assert await token_status(standin) == 500


async def test_other_switch_changes_keep_requests_held(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(
        aiohttp_client, StandinSettings(fail_token_requests=1, fail_token_mode="hang")
    )
    held = await hold_one_token_request(standin)
    await set_faults(standin, fail_api_requests=0)
    await asyncio.sleep(0.05)
    assert not held.done()
    await standin.client.delete("/_standin/faults")
    await asyncio.wait_for(held, 2)


async def test_a_hung_request_does_not_hold_up_shutdown(aiohttp_server: Any) -> None:
    app = create_standin_app(StandinSettings(fail_token_requests=1, fail_token_mode="hang"))
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        held = asyncio.ensure_future(
            session.post(server.make_url("/connect/token"), data=TOKEN_FORM)
        )

        async def one_held() -> bool:
            async with session.get(server.make_url("/_standin/faults")) as response:
                return (await response.json())["hanging_token_requests"] == 1

        await wait_for(one_held)
        started = time.monotonic()
        await asyncio.wait_for(server.close(), 5)
        assert time.monotonic() - started < 2  # aiohttp would otherwise wait 60 s for it
        response = await asyncio.wait_for(held, 2)
        response.release()


@asynccontextmanager
async def served_like_the_cli(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on loopback as `smartdoc-proxy standin` does; yields its base URL.

    Not `aiohttp_server`: the test server cancels a handler whose client disconnects, whereas
    `web.run_app` (what the CLI uses) lets the handler run on, which is the case tested here.
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_a_hung_request_whose_client_went_away_is_dropped_and_issues_no_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_standin_app(StandinSettings(fail_token_requests=1, fail_token_mode="hang"))
    async with served_like_the_cli(app) as base, aiohttp.ClientSession(base) as session:

        async def held_now() -> int:
            async with session.get("/_standin/faults") as response:
                return int((await response.json())["hanging_token_requests"])

        with pytest.raises(TimeoutError):  # the client gives up and closes its connection
            await session.post(
                "/connect/token", data=TOKEN_FORM, timeout=aiohttp.ClientTimeout(total=0.3)
            )

        async def dropped() -> bool:
            return await held_now() == 0

        await wait_for(dropped)  # nothing cleared the hang: the client's leaving ended it
        async with session.delete("/_standin/faults"):
            pass
        async with session.post("/_standin/revoke-tokens") as revoked:
            assert await revoked.json() == {"revoked": 0}  # the dropped request issued nothing
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
