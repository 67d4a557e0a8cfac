"""Fault switches, set at start by settings and live through `/_standin/faults`."""

from __future__ import annotations

import time
from typing import Any

import pytest

from proxy.standin import StandinSettings
from tests.standin_helpers import (
    API,
    TOKEN_FORM,
    ClientFactory,
    assert_problem,
    basic,
    problem,
    set_faults,
    start_standin,
    token_status,
)

WORKSPACES = "/sdworkspace/CurrentWorkspaces"


async def test_token_requests_fail_with_invalid_client_from_the_start(
    aiohttp_client: ClientFactory,
) -> None:
    settings = StandinSettings(fail_token_requests=2)
    standin = await start_standin(aiohttp_client, settings)
    response = await standin.client.post("/connect/token", data=TOKEN_FORM)
    assert response.status == 400
    assert await response.json() == {"error": "invalid_client"}
    basic_response = await standin.client.post(
        "/connect/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic("demo-client", "demo-secret")},
    )
    assert basic_response.status == 400
    assert "WWW-Authenticate" not in basic_response.headers
    assert await basic_response.json() == {"error": "invalid_client"}
    assert await token_status(standin) == 200


async def test_token_requests_fail_with_500_when_switched_on(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    shown = await set_faults(standin, fail_token_requests=1, fail_token_mode="500")
    assert (shown["fail_token_requests"], shown["fail_token_mode"]) == (1, "500")
    assert await token_status(standin) == 500
    assert await token_status(standin) == 200


async def test_latency_delays_api_and_token_responses(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.authorize()  # so that the timed API call below makes no token request of its own
    await set_faults(standin, latency_seconds=0.25)
    started = time.monotonic()
    assert (await standin.api("GET", WORKSPACES)).status == 200
    assert time.monotonic() - started >= 0.25
    started = time.monotonic()
    assert await token_status(standin) == 200
    assert time.monotonic() - started >= 0.25
    started = time.monotonic()
    assert (await standin.client.get("/_standin/faults")).status == 200
    assert time.monotonic() - started < 0.25  # the admin path is never delayed


async def test_latency_can_be_set_from_the_start(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(latency_seconds=0.2))
    started = time.monotonic()
    await standin.token()
    assert time.monotonic() - started >= 0.2


async def test_the_next_api_calls_answer_429_with_retry_after(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.authorize()
    await set_faults(standin, fail_api_requests=2, fail_api_status=429, retry_after_seconds=7)
    for _ in range(2):
        response = await standin.api("GET", WORKSPACES)
        assert response.status == 429
        assert response.headers["Retry-After"] == "7"
        assert response.content_type == "application/problem+json"
        assert_problem(await response.json(), 429)
    assert (await standin.api("GET", WORKSPACES)).status == 200


async def test_api_refusals_can_be_set_from_the_start(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(fail_api_requests=1))
    response = await standin.api("GET", WORKSPACES)
    assert (response.status, response.headers["Retry-After"]) == (503, "1")
    assert (await standin.api("GET", WORKSPACES)).status == 200


async def test_api_calls_answer_503_for_a_number_of_seconds(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(fail_api_seconds=30))
    response = await standin.api("GET", WORKSPACES)
    assert (response.status, response.headers["Retry-After"]) == (503, "30")
    standin.clock.advance(29.5)
    response = await standin.api("GET", WORKSPACES)
    assert (response.status, response.headers["Retry-After"]) == (503, "1")
    standin.clock.advance(0.5)
    assert (await standin.api("GET", WORKSPACES)).status == 200


async def test_a_refusal_window_can_be_opened_and_closed_live(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.authorize()
    shown = await set_faults(standin, fail_api_seconds=10, fail_api_status=429)
    assert shown["fail_api_seconds"] == 10.0
    assert (await standin.api("GET", WORKSPACES)).status == 429
    await set_faults(standin, fail_api_seconds=0)
    assert (await standin.api("GET", WORKSPACES)).status == 200


async def test_api_refusals_do_not_touch_token_or_admin_paths(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(fail_api_requests=1))
    assert await token_status(standin) == 200
    shown = await (await standin.client.get("/_standin/faults")).json()
    assert shown["fail_api_requests"] == 1
    response = await standin.client.get(API + WORKSPACES)
    assert response.status == 503  # refused before the token is even looked at


async def test_the_admin_path_shows_every_switch(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    shown = await (await standin.client.get("/_standin/faults")).json()
    assert shown == {
        "fail_token_requests": 0,
        "fail_token_mode": "invalid_client",
        "latency_seconds": 0.0,
        "fail_api_requests": 0,
        "fail_api_status": 503,
        "retry_after_seconds": 1,
        "fail_api_seconds": 0.0,
        "hanging_token_requests": 0,
    }
    patched = await standin.client.patch("/_standin/faults", json={"fail_api_requests": 3})
    assert (await patched.json())["fail_api_requests"] == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"fail_api_status": 500}, "fail_api_status"),
        ({"latency_seconds": -1}, "latency_seconds"),
        ({"no_such_switch": 1}, "no_such_switch"),
    ],
)
async def test_bad_admin_changes_are_validation_problems_and_change_nothing(
    aiohttp_client: ClientFactory, body: dict[str, Any], field: str
) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.client.post("/_standin/faults", json={"fail_api_requests": 4, **body})
    assert response.status == 400
    result = await response.json()
    assert_problem(result, 400)
    assert list(result["errors"]) == [field]
    shown = await (await standin.client.get("/_standin/faults")).json()
    assert shown["fail_api_requests"] == 0


async def test_admin_changes_must_be_json(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.client.post("/_standin/faults", data="fail_api_requests=1")
    assert response.status == 415


async def test_admin_json_nested_past_the_recursion_limit_is_not_valid_json(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    deep = "[" * 200_000 + "]" * 200_000
    response = await standin.client.post(
        "/_standin/faults", data=deep, headers={"Content-Type": "application/json"}
    )
    result = await problem(response, 400)
    assert result["errors"] == {"$": ["The request body is not valid JSON."]}
