"""Tokens as the proxy uses them: fetched once, shared, refreshed early, replaced after a 401."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import MakeStack, Stack
from tests.fakes import CLIENT_ID, SECRET, FakeTokenEndpoint, json_of, token_app

INVALID_CLIENT = (400, {"error": "invalid_client"})


async def _eventually(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def _get(stack: Stack, path: str = "/api/x") -> int:
    response = await stack.client.get(path)
    await response.read()
    return response.status


async def test_hundreds_of_concurrent_requests_at_a_cold_start_cause_one_token_request(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    stack.endpoint.delay_seconds = 0.2
    statuses = await asyncio.gather(*(_get(stack) for _ in range(300)))
    assert statuses == [200] * 300
    assert len(stack.endpoint.requests) == 1
    assert set(stack.upstream.tokens_seen) == {"token-1"}


async def test_the_token_request_is_form_encoded_as_the_vendor_documents(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    await _get(stack)
    request = stack.endpoint.requests[0]
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.form == {
        "grant_type": "client_credentials",
        "scope": "WebAPI",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
    }
    assert "Authorization" not in request.headers


async def test_basic_client_authentication_sends_the_credentials_in_the_header(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(client_auth="basic", client_id="id with space")
    await _get(stack)
    request = stack.endpoint.requests[0]
    expected = base64.b64encode(f"id+with+space:{SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.form == {"grant_type": "client_credentials", "scope": "WebAPI"}


async def test_a_failed_token_fetch_is_shared_by_every_waiting_request(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    stack.endpoint.failures = [INVALID_CLIENT]
    stack.endpoint.delay_seconds = 0.2
    responses = await asyncio.gather(*(stack.client.get("/api/x") for _ in range(50)))
    assert {r.status for r in responses} == {502}
    assert len(stack.endpoint.requests) == 1
    assert stack.upstream.received == []
    problem = json_of(await responses[0].read())
    assert responses[0].content_type == "application/problem+json"
    assert "invalid_client" in str(problem["detail"])
    assert "smartdoc-proxy check" in str(problem["detail"])
    assert SECRET not in str(problem)


async def test_during_an_outage_a_burst_causes_one_attempt_then_backoff(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    stack.endpoint.failures = [(500, {}), (500, {})]
    first = await stack.client.get("/api/x")
    assert first.status == 503
    assert int(first.headers["Retry-After"]) >= 1
    statuses = await asyncio.gather(*(_get(stack) for _ in range(200)))
    assert statuses == [503] * 200
    assert len(stack.endpoint.requests) == 1
    stack.clock.advance(1.01)  # the first backoff step is at most 1 s
    assert await _get(stack) == 503
    assert len(stack.endpoint.requests) == 2
    stack.clock.advance(2.01)  # the second at most 2 s
    assert await _get(stack) == 200
    assert len(stack.endpoint.requests) == 3


async def test_a_hanging_token_endpoint_gives_503_after_the_token_timeout(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(token_timeout_seconds="0.3")
    stack.endpoint.failures = ["hang"]
    response = await stack.client.get("/api/x")
    assert response.status == 503
    assert "Retry-After" in response.headers
    detail = json_of(await response.read())["detail"]
    assert detail == "the token endpoint did not answer within 0.3 s"


async def test_an_unreachable_token_endpoint_gives_503(make_stack: MakeStack) -> None:
    stack = await make_stack(token_url="http://127.0.0.1:9/connect/token")
    response = await stack.client.get("/api/x")
    assert response.status == 503
    assert "unreachable" in str(json_of(await response.read())["detail"])


async def test_the_token_is_refreshed_ahead_of_expiry_without_making_requests_wait(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(refresh_margin_seconds="300")
    assert await _get(stack) == 200
    stack.clock.advance(3400)  # past refresh_at (3300), before expiry (3590)
    stack.endpoint.delay_seconds = 0.5
    assert await _get(stack) == 200
    assert stack.upstream.tokens_seen[-1] == "token-1"  # served without waiting
    await _eventually(lambda: len(stack.endpoint.issued) == 2)
    assert await _get(stack) == 200
    assert stack.upstream.tokens_seen[-1] == "token-2"
    assert len(stack.endpoint.requests) == 2


async def test_an_expired_token_is_never_sent(make_stack: MakeStack) -> None:
    stack = await make_stack()
    assert await _get(stack) == 200
    stack.clock.advance(3591)  # past the token's expiry, less the skew
    assert await _get(stack) == 200
    assert stack.upstream.tokens_seen == ["token-1", "token-2"]


@pytest.mark.parametrize(("expires_in", "lifetime"), [("120", 120), (None, 3600)])
async def test_expires_in_as_a_string_or_missing(
    make_stack: MakeStack, expires_in: object, lifetime: int
) -> None:
    stack = await make_stack()
    stack.endpoint.expires_in = expires_in
    await _get(stack)
    stack.clock.advance(lifetime * 0.9 - 1)  # still valid: one token
    await _get(stack)
    assert stack.upstream.tokens_seen == ["token-1", "token-1"]
    stack.clock.advance(lifetime * 0.1 + 2)  # expired: a new one before sending
    await _get(stack)
    assert stack.upstream.tokens_seen[-1] == "token-2"


@pytest.mark.parametrize("expires_in", [0, -30, "0"])
async def test_a_token_with_no_lifetime_is_used_once_and_not_cached(
    make_stack: MakeStack, expires_in: object
) -> None:
    stack = await make_stack()
    stack.endpoint.expires_in = expires_in
    for _ in range(3):
        assert await _get(stack) == 200
    assert stack.upstream.tokens_seen == stack.endpoint.issued[-3:]
    assert len(set(stack.upstream.tokens_seen)) == 3


async def test_a_token_type_other_than_bearer_is_refused(make_stack: MakeStack) -> None:
    stack = await make_stack()
    stack.endpoint.token_type = "mac"
    response = await stack.client.get("/api/x")
    assert response.status == 502
    assert stack.upstream.received == []


async def test_a_rotated_secret_file_is_used_without_a_restart(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("first-secret\n")
    stack = await make_stack(
        env={"SMARTDOC_CLIENT_SECRET": ""}, client_secret_file=str(secret_file)
    )
    await _get(stack)
    secret_file.write_text("second-secret\n")
    stack.clock.advance(4000)
    await _get(stack)
    assert [r.form["client_secret"] for r in stack.endpoint.requests] == [
        "first-secret",
        "second-secret",
    ]


async def test_an_unreadable_secret_file_gives_502_naming_the_file(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("s")
    stack = await make_stack(
        env={"SMARTDOC_CLIENT_SECRET": ""}, client_secret_file=str(secret_file)
    )
    secret_file.unlink()
    stack.clock.advance(100)  # let any start-up fetch's outcome age out
    response = await stack.client.get("/api/x")
    if response.status == 200:  # the start-up fetch read the file in time: force a new one
        stack.clock.advance(4000)
        response = await stack.client.get("/api/x")
    assert response.status == 502
    assert "secret file" in str(json_of(await response.read())["detail"])


async def test_a_401_is_retried_once_with_a_fresh_token_and_the_same_body(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    stack.upstream.rejected = {"token-1"}
    body = b'{"displayName": "batch"}'
    response = await stack.client.post("/api/v1.0/external/sdbatch?x=1&x=2", data=body)
    assert response.status == 200
    assert stack.upstream.tokens_seen == ["token-1", "token-2"]
    assert [r.body for r in stack.upstream.received] == [body, body]
    paths = [r.raw_path for r in stack.upstream.received]
    assert paths == ["/api/v1.0/external/sdbatch?x=1&x=2"] * 2
    metrics = await (await stack.client.get("/_proxy/metrics")).text()
    assert "smartdoc_proxy_resends_total 1.0" in metrics


async def test_a_401_on_a_fresh_token_goes_back_to_the_client(make_stack: MakeStack) -> None:
    stack = await make_stack()
    stack.upstream.rejected = {"token-1", "token-2", "token-3"}
    response = await stack.client.get("/api/x")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert stack.upstream.tokens_seen == ["token-1", "token-2"]
    assert len(stack.endpoint.requests) == 2


async def test_many_concurrent_401s_on_one_token_cause_one_refresh(make_stack: MakeStack) -> None:
    stack = await make_stack()
    assert await _get(stack) == 200
    stack.upstream.rejected = {"token-1"}
    stack.endpoint.delay_seconds = 0.1
    statuses = await asyncio.gather(*(_get(stack) for _ in range(100)))
    assert statuses == [200] * 100
    assert len(stack.endpoint.requests) == 2
    assert stack.upstream.tokens_seen.count("token-2") == 100


async def test_a_body_over_the_replay_limit_is_not_resent_but_the_token_is_dropped(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(replay_limit_bytes="10")
    stack.upstream.rejected = {"token-1"}
    response = await stack.client.post("/api/upload", data=b"z" * 100)
    assert response.status == 401
    assert len(stack.upstream.received) == 1
    assert stack.upstream.received[0].body == b"z" * 100
    stack.upstream.rejected = set()
    assert await _get(stack) == 200
    assert stack.upstream.tokens_seen[-1] == "token-2"


async def test_a_late_401_on_an_old_token_does_not_drop_the_new_one(make_stack: MakeStack) -> None:
    stack = await make_stack()
    assert await _get(stack) == 200
    stack.upstream.rejected = {"token-1"}
    stack.upstream.delays = {"/late": 0.3}
    late = asyncio.create_task(_get(stack, "/late"))  # its 401 comes after token-2 is cached
    assert await _get(stack, "/early") == 200
    assert stack.endpoint.issued == ["token-1", "token-2"]
    assert await late == 200
    assert len(stack.endpoint.requests) == 2
    assert stack.upstream.tokens_seen[-1] == "token-2"


async def test_a_client_leaving_during_a_token_fetch_does_not_cancel_it_for_others(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    stack.endpoint.delay_seconds = 0.3
    stack.clock.advance(4000)  # whatever start-up fetched has expired: the next get fetches
    leaving = asyncio.create_task(_get(stack))
    staying = asyncio.create_task(_get(stack))
    await asyncio.sleep(0.1)
    leaving.cancel()
    assert await staying == 200
    assert stack.upstream.tokens_seen == [stack.endpoint.issued[-1]]


async def test_backoff_grows_with_each_failure_in_a_row(make_stack: MakeStack) -> None:
    stack = await make_stack()
    stack.endpoint.failures = [(500, {})] * 4
    retry_after = []
    for _ in range(4):
        response = await stack.client.get("/api/x")
        assert response.status == 503
        retry_after.append(int(response.headers["Retry-After"]))
        stack.clock.advance(60.01)  # past any backoff step: the next request tries again
    assert len(stack.endpoint.requests) == 4
    # Equal jitter: step n waits between 2**(n-2) and 2**(n-1) seconds.
    assert retry_after[0] == 1
    assert retry_after[2] >= 2
    assert retry_after[3] >= 4


async def test_a_token_is_fetched_at_start_up_and_refreshed_with_no_requests(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    await _eventually(lambda: len(stack.endpoint.issued) == 1)
    stack.clock.advance(3400)  # past refresh_at, no request in sight
    await _eventually(lambda: len(stack.endpoint.issued) == 2)
    assert stack.upstream.received == []


async def test_a_redirect_from_the_token_endpoint_is_not_followed(
    make_stack: MakeStack,
    aiohttp_server,  # type: ignore[no-untyped-def]
) -> None:
    elsewhere = FakeTokenEndpoint()
    other = await aiohttp_server(token_app(elsewhere))

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(str(other.make_url("/connect/token")))

    redirector = web.Application()
    redirector.router.add_post("/connect/token", redirect)
    moved = await aiohttp_server(redirector)
    stack = await make_stack(token_url=str(moved.make_url("/connect/token")))
    response = await stack.client.get("/api/x")
    assert response.status == 502
    assert "307" in str(json_of(await response.read())["detail"])
    assert elsewhere.requests == []  # the secret went nowhere else
