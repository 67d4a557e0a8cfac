"""The proxy's own endpoints, its error answers, its metrics and its logs."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import web

from proxy import logs
from tests.conftest import MakeStack
from tests.fakes import SECRET, FakeUpstream, json_of, raw_exchange


async def test_healthz_answers_without_a_token(make_stack: MakeStack) -> None:
    stack = await make_stack()
    stack.endpoint.failures = [(500, {})] * 5
    response = await stack.client.get("/_proxy/healthz")
    assert response.status == 200
    assert json_of(await response.read()) == {"status": "ok"}


async def test_readyz_is_200_when_a_token_can_be_had(make_stack: MakeStack) -> None:
    stack = await make_stack()
    response = await stack.client.get("/_proxy/readyz")
    assert response.status == 200
    body = json_of(await response.read())
    assert body["status"] == "ready"
    assert 3500 < int(str(body["token_expires_in_seconds"])) <= 3600


async def test_readyz_is_503_with_the_reason_when_no_token_can_be_had(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    stack.endpoint.failures = [(400, {"error": "invalid_client"})] * 5
    response = await stack.client.get("/_proxy/readyz")
    assert response.status == 503
    assert response.content_type == "application/problem+json"
    assert "400" in str(json_of(await response.read())["detail"])


@pytest.mark.parametrize("path", ["/_proxy/healthz", "/_proxy/other", "/_proxy/metrics/x"])
async def test_proxy_paths_are_never_forwarded(make_stack: MakeStack, path: str) -> None:
    stack = await make_stack()
    response = await stack.client.post(path, data=b"{}")
    assert response.status in (404, 405)
    assert response.content_type == "application/problem+json"
    assert stack.upstream.received == []


async def test_upstream_errors_pass_through_untouched(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    problem = b'{"type":"x","title":"Not Found","status":404,"traceId":"00-abc"}'

    async def respond(request: web.Request) -> web.Response:
        return web.Response(status=404, body=problem, content_type="application/problem+json")

    upstream.responder = respond
    stack = await make_stack()
    response = await stack.client.get("/api/v1.0/external/sdbatch?batchId=9")
    assert response.status == 404
    assert await response.read() == problem


async def test_an_unreachable_upstream_gives_502(make_stack: MakeStack) -> None:
    stack = await make_stack()
    await stack.upstream_server.close()
    response = await stack.client.get("/api/x")
    assert response.status == 502
    assert response.content_type == "application/problem+json"


async def test_a_slow_upstream_gives_504(make_stack: MakeStack, upstream: FakeUpstream) -> None:
    async def respond(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    upstream.responder = respond
    stack = await make_stack(upstream_read_timeout_seconds="0.2")
    response = await stack.client.get("/api/x")
    assert response.status == 504
    assert "0.2 s" in str(json_of(await response.read())["detail"])


async def test_metrics_cover_requests_latency_tokens_and_resends(make_stack: MakeStack) -> None:
    stack = await make_stack()
    stack.upstream.rejected = {"token-1"}
    await stack.client.get("/api/x")
    await stack.client.request("PROPFIND", "/api/x")
    text = await (await stack.client.get("/_proxy/metrics")).text()
    for line in (
        'smartdoc_proxy_requests_total{client="anonymous",method="GET",operation="other",'
        'status="200"} 1.0',
        'smartdoc_proxy_requests_total{client="anonymous",method="OTHER",operation="other",'
        'status="200"} 1.0',
        'smartdoc_proxy_token_fetches_total{outcome="success"} 2.0',
        "smartdoc_proxy_resends_total 1.0",
        "smartdoc_proxy_request_duration_seconds_count",
        "smartdoc_proxy_upstream_duration_seconds_count 3.0",
        "smartdoc_proxy_requests_in_flight 1.0",
    ):
        assert line in text, line
    expiry = next(
        line for line in text.splitlines() if line.startswith("smartdoc_proxy_token_expires_in")
    )
    assert 3500 < float(expiry.split()[-1]) <= 3600


def _access_records(caplog: pytest.LogCaptureFixture) -> list[logs.AccessRecord]:
    found = [getattr(r, "access", None) for r in caplog.records if r.name == logs.ACCESS_LOGGER]
    return [record for record in found if isinstance(record, logs.AccessRecord)]


async def test_one_access_line_per_request_without_the_query(
    make_stack: MakeStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stack = await make_stack()
    stack.upstream.rejected = {"token-1"}
    await stack.client.get("/api/v1.0/external/sdtask/status?externalId=customer-42")
    (record,) = _access_records(caplog)
    assert (record.method, record.path, record.status, record.resent) == (
        "GET",
        "/api/v1.0/external/sdtask/status",
        200,
        True,
    )
    assert record.bytes > 0
    (log_record,) = [r for r in caplog.records if r.name == logs.ACCESS_LOGGER]
    line = json.loads(logs.JsonFormatter().format(log_record))
    assert (line["path"], line["status"], line["resent"]) == (record.path, 200, True)
    assert "customer-42" not in logs.JsonFormatter().format(log_record)
    assert "customer-42" not in log_record.getMessage()


async def test_no_token_secret_or_authorization_in_any_log_line_at_debug(
    make_stack: MakeStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stack = await make_stack()
    stack.upstream.rejected = {"token-1"}
    await stack.client.get("/api/x", headers={"Authorization": "Bearer client-own-token"})
    stack.endpoint.failures = [(400, {"error": "invalid_client", "error_description": SECRET})]
    stack.clock.advance(4000)
    await stack.client.get("/api/y")
    assert len(stack.endpoint.issued) == 2
    text_lines = [logging.Formatter(logs.TEXT_FORMAT).format(r) for r in caplog.records]
    json_lines = [logs.JsonFormatter().format(r) for r in caplog.records]
    everything = "\n".join(text_lines + json_lines)
    assert "token fetched" in everything
    assert "token fetch failed" in everything
    for secret in (SECRET, "client-own-token", *stack.endpoint.issued, "Bearer "):
        assert secret not in everything, secret


async def test_the_access_log_counts_body_bytes_only(
    make_stack: MakeStack, caplog: pytest.LogCaptureFixture, upstream: FakeUpstream
) -> None:
    async def respond(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 26, content_type="application/json")

    upstream.responder = respond
    caplog.set_level(logging.INFO)
    stack = await make_stack()
    await (await stack.client.get("/api/x")).read()
    await (await stack.client.head("/api/x")).read()
    problem_answer = await stack.client.get("/_proxy/nothing-here")
    problem_size = len(await problem_answer.read())
    assert [r.bytes for r in _access_records(caplog)] == [26, 0, problem_size]


async def test_a_path_cannot_forge_an_access_log_line(
    make_stack: MakeStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stack = await make_stack()
    target = "/api/x%0A2026-01-01%20INFO%20proxy.access:%20GET%20/fake%20200?q=%0A"
    request = f"GET {target} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
    await raw_exchange(stack.client.port, request.encode())
    (record,) = _access_records(caplog)
    assert record.path == target.partition("?")[0]
    (log_record,) = [r for r in caplog.records if r.name == logs.ACCESS_LOGGER]
    assert "\n" not in logging.Formatter(logs.TEXT_FORMAT).format(log_record)


def test_the_text_format_s_time_is_logging_s_own_across_seconds() -> None:
    # The time of day is formatted once a second: lines within a second, and those after it,
    # read as logging's own formatter writes them.
    ours, theirs = logs.TextFormatter(), logging.Formatter(logs.TEXT_FORMAT)
    for created in (1_800_000_000.001, 1_800_000_000.999, 1_800_000_001.5, 1_800_000_061.25):
        record = logging.LogRecord("proxy.x", logging.INFO, __file__, 1, "said", (), None)
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
        assert ours.format(record) == theirs.format(record)
