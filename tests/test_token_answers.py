"""How the proxy reads what the token endpoint answers, including answers that are cut, split,
oversized, hostile or echo the secret back."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import tomllib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import web

from proxy import logs
from proxy.grants import redact, secret_forms
from tests.conftest import MakeStack
from tests.fakes import CLIENT_ID, SECRET, json_of

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _split_token_app(parts: list[bytes], pause: float, status: int = 200) -> web.Application:
    """A token endpoint that writes its answer in separate TCP segments, ``pause`` apart."""

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        response.content_length = sum(len(part) for part in parts)
        await response.prepare(request)
        for part in parts:
            await response.write(part)
            await asyncio.sleep(pause)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/connect/token", handle)
    return app


async def _stack_with_token_app(
    make_stack: MakeStack,
    aiohttp_server,  # type: ignore[no-untyped-def]
    app: web.Application,
):  # type: ignore[no-untyped-def]
    server = await aiohttp_server(app)
    return await make_stack(token_url=str(server.make_url("/connect/token")))


async def test_a_token_answer_sent_in_two_segments_is_read_whole(
    make_stack: MakeStack,
    aiohttp_server,  # type: ignore[no-untyped-def]
) -> None:
    body = json.dumps({"access_token": "split-token", "expires_in": 3600}).encode()
    app = _split_token_app([body[:10], body[10:]], pause=0.05)
    stack = await _stack_with_token_app(make_stack, aiohttp_server, app)
    response = await stack.client.get("/api/x")
    assert response.status == 200
    assert stack.upstream.tokens_seen == ["split-token"]


async def test_a_token_answer_over_the_size_cap_is_its_own_error(
    make_stack: MakeStack,
    aiohttp_server,  # type: ignore[no-untyped-def]
) -> None:
    chunk = b" " * 16384
    app = _split_token_app([b'{"access_token": "x"', *[chunk] * 5, b"}"], pause=0)
    stack = await _stack_with_token_app(make_stack, aiohttp_server, app)
    response = await stack.client.get("/api/x")
    assert response.status == 503
    assert "larger than" in str(json_of(await response.read())["detail"])


@pytest.mark.parametrize(
    "body",
    [b"<html><body>Gateway error</body></html>", b'{"access_token": "abc", "expi'],
    ids=["html", "truncated-json"],
)
async def test_a_200_that_is_not_json_is_the_endpoint_failing_not_the_credentials(
    make_stack: MakeStack,
    aiohttp_server,  # type: ignore[no-untyped-def]
    body: bytes,
) -> None:
    stack = await _stack_with_token_app(make_stack, aiohttp_server, _split_token_app([body], 0))
    response = await stack.client.get("/api/x")
    assert response.status == 503
    assert "Retry-After" in response.headers
    problem = json_of(await response.read())
    assert problem["type"] == "urn:smartdoc-proxy:problem:token-unavailable"
    metrics = await (await stack.client.get("/_proxy/metrics")).text()
    assert 'smartdoc_proxy_token_fetches_total{outcome="unavailable"}' in metrics
    assert 'smartdoc_proxy_token_fetches_total{outcome="rejected"} 0.0' in metrics


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        pytest.param(Path.unlink, "No such file or directory", id="deleted"),
        pytest.param(lambda path: path.write_text(""), "it is empty", id="emptied"),
    ],
)
async def test_an_unreadable_secret_file_is_a_local_fault_with_its_own_outcome(
    make_stack: MakeStack,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    spoil: Callable[[Path], object],
    reason: str,
) -> None:
    caplog.set_level(logging.INFO)
    secret_file = tmp_path / "secret"
    secret_file.write_text("s")
    stack = await make_stack(
        env={"SMARTDOC_CLIENT_SECRET": ""}, client_secret_file=str(secret_file)
    )
    await (await stack.client.get("/_proxy/healthz")).read()
    spoil(secret_file)
    stack.clock.advance(4000)
    response = await stack.client.get("/api/x")
    assert response.status == 502
    problem = json_of(await response.read())
    assert problem["type"] == "urn:smartdoc-proxy:problem:secret-unreadable"
    assert "rejected" not in str(problem).lower()
    assert problem["detail"] == (
        f"the proxy cannot read its client secret file {secret_file}: {reason}"
    )
    assert len(stack.endpoint.requests) == 1  # the start-up fetch only: nothing empty was sent
    metrics = await (await stack.client.get("/_proxy/metrics")).text()
    assert 'smartdoc_proxy_token_fetches_total{outcome="secret_unreadable"} 1.0' in metrics
    lines = [r.getMessage() for r in caplog.records if "token fetch failed" in r.getMessage()]
    assert any("(secret_unreadable)" in line for line in lines)


@pytest.mark.parametrize(
    ("error", "named"),
    [
        ("invalid_client", "invalid_client"),
        ("invalid_grant", "invalid_grant"),
        (f"client {SECRET} is unknown", "unrecognised error"),
        ("<script>alert(1)</script>", "unrecognised error"),
        (42, "unrecognised error"),
    ],
)
async def test_only_rfc_6749_error_codes_reach_the_client(
    make_stack: MakeStack, error: object, named: str
) -> None:
    stack = await make_stack()
    await (await stack.client.get("/_proxy/healthz")).read()
    stack.endpoint.failures = [(400, {"error": error, "error_description": f"echo {SECRET}"})]
    stack.clock.advance(4000)
    response = await stack.client.get("/api/x")
    assert response.status == 502
    text = await response.text()
    assert named in json_of(text.encode())["detail"]
    assert SECRET not in text
    assert "echo" not in text  # error_description never reaches a client
    assert str(error) not in text or error in ("invalid_client", "invalid_grant")


def _echoes(secret: str) -> list[str]:
    basic = base64.b64encode(f"{quote_plus(CLIENT_ID)}:{quote_plus(secret)}".encode()).decode()
    return [secret, quote_plus(secret), quote(secret, safe=""), basic, json.dumps(secret)[1:-1]]


async def test_the_secret_echoed_in_any_form_is_redacted_from_logs_and_check(
    make_stack: MakeStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = 'p@ss w/rd+"&='
    stack = await make_stack(env={"SMARTDOC_CLIENT_SECRET": secret}, client_auth="basic")
    await (await stack.client.get("/_proxy/healthz")).read()
    description = "you sent " + " | ".join(_echoes(secret))
    stack.endpoint.failures = [(400, {"error": "invalid_client", "error_description": description})]
    stack.clock.advance(4000)
    response = await stack.client.get("/api/x")
    body = await response.text()
    everything = "\n".join(logs.JsonFormatter().format(r) for r in caplog.records) + body
    for form in _echoes(secret):
        assert form not in everything, form
    assert "[redacted]" in everything


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        (f"a {SECRET} b", "a [redacted] b"),
        (f"a {quote_plus('x y')} b", "a [redacted] b"),
        ("line\nbreak\x1b[31m", "line\\x0abreak\\x1b[31m"),
        ("x" * 300, "x" * 200 + "…"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text, [*secret_forms(SECRET, CLIENT_ID), *secret_forms("x y", CLIENT_ID)]) == (
        expected
    )


async def test_token_requests_identify_the_proxy(make_stack: MakeStack) -> None:
    stack = await make_stack()
    await (await stack.client.get("/api/x", headers={"User-Agent": "legacy/1.0"})).read()
    version = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]
    assert stack.endpoint.requests[0].headers["User-Agent"] == f"smartdoc-proxy/{version}"
    assert stack.upstream.received[0].headers["User-Agent"] == "legacy/1.0"
