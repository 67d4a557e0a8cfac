"""The inspector at /_proxy/: what it shows of each exchange, who may open it, its live
stream, its memory bound and its HAR export; against the proxy on loopback with its fakes."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from yarl import URL

from proxy.app import create_app, ops_app
from proxy.config import load_config
from proxy.handler import handle
from proxy.inspector.redact import REDACTED
from tests.conftest import MakeStack, Stack
from tests.fakes import CLIENT_ID, SECRET, FakeUpstream, free_port, json_of, proxy_command

ALICE_KEY = "alice-key-0123456789abcdef"
BOB_KEY = "bob-key-fedcba9876543210"
PAGES = ("/_proxy/", "/_proxy/inspector.js", "/_proxy/inspector.css")
DATA = ("/_proxy/state", "/_proxy/exchanges", "/_proxy/exchange?id=1", "/_proxy/exchanges.har")


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "inbound-keys"
    path.write_text(f"alice {ALICE_KEY}\nbob {BOB_KEY}\n")
    return path


async def get_json(client: TestClient[object, object], path: str, **kwargs: object) -> object:
    response = await client.get(path, **kwargs)  # type: ignore[arg-type]
    assert response.status == 200, await response.text()
    return await response.json()


async def listed(stack: Stack, query: str = "") -> list[dict[str, object]]:
    document = await get_json(stack.client, "/_proxy/exchanges" + query)
    assert isinstance(document, dict)
    return document["exchanges"]  # type: ignore[no-any-return]


async def detail(stack: Stack, id: object) -> dict[str, object]:
    document = await get_json(stack.client, f"/_proxy/exchange?id={id}")
    assert isinstance(document, dict)
    return document


async def test_a_request_through_the_proxy_is_listed_with_what_became_of_it(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    target = URL("/api/v1.0/external/sdbatch?x=%2F1", encoded=True)
    response = await stack.client.post(target, data=b"{}")
    assert response.status == 200
    answer = await response.read()

    (shown,) = await listed(stack)
    assert shown["method"] == "POST"
    assert shown["target"] == "/api/v1.0/external/sdbatch?x=%2F1"
    assert shown["status"] == 200
    assert shown["client"] == "anonymous"
    assert shown["organization"] == "default"
    assert shown["bytesIn"] == 2
    assert shown["bytesOut"] == len(answer)
    assert shown["resent"] is False
    assert isinstance(shown["durationMs"], float)


async def test_the_newest_exchange_comes_first(make_stack: MakeStack) -> None:
    stack = await make_stack()
    for path in ("/api/first", "/api/second"):
        await stack.client.get(path)

    assert [e["target"] for e in await listed(stack)] == ["/api/second", "/api/first"]


async def test_a_resend_after_a_401_is_shown(make_stack: MakeStack, upstream: FakeUpstream) -> None:
    upstream.rejected.add("token-1")
    stack = await make_stack()
    await stack.client.get("/_proxy/readyz")  # the first token, which the upstream rejects

    assert (await stack.client.get("/api/x")).status == 200

    (shown,) = await listed(stack)
    assert shown["resent"] is True


async def test_the_detail_shows_the_headers_on_both_sides_with_credentials_redacted(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    await stack.client.get(
        "/api/x",
        headers={"Authorization": "Bearer client-said", "Cookie": "s=1", "X-Trace": "abc"},
    )
    (shown,) = await listed(stack)

    headers = (await detail(stack, shown["id"]))["headers"]
    assert isinstance(headers, dict)
    client = dict(headers["client"])
    assert client["Authorization"] == REDACTED
    assert client["Cookie"] == REDACTED
    assert client["X-Trace"] == "abc"
    sent = dict(headers["upstreamRequest"])
    assert sent["Authorization"] == REDACTED  # the token it carried
    assert sent["X-Forwarded-For"] == "127.0.0.1"
    assert sent["X-Trace"] == "abc"
    assert "Cookie" in sent
    assert dict(headers["upstreamResponse"])["Content-Type"].startswith("application/json")
    assert "Date" in dict(headers["response"])
    # What the upstream really received carried the token the page never shows.
    assert stack.upstream.received[0].headers["Authorization"] == "Bearer token-1"


async def test_an_answer_of_the_proxy_s_own_shows_no_upstream_side(make_stack: MakeStack) -> None:
    stack = await make_stack()
    stack.endpoint.failures = [(400, {"error": "invalid_client"})] * 5
    assert (await stack.client.get("/api/x")).status == 502

    (shown,) = await listed(stack)
    document = await detail(stack, shown["id"])
    headers = document["headers"]
    assert isinstance(headers, dict)
    assert headers["upstreamRequest"] is None
    assert headers["upstreamResponse"] is None
    assert dict(headers["response"])["Content-Type"].startswith("application/problem+json")
    assert stack.upstream.received == []


async def test_bodies_are_not_kept_by_default(make_stack: MakeStack) -> None:
    stack = await make_stack()
    await stack.client.post("/api/x", json={"displayName": "customer data"})
    (shown,) = await listed(stack)

    document = await detail(stack, shown["id"])

    assert "customer data" not in json.dumps(document)
    bodies = document["bodies"]
    assert isinstance(bodies, dict)
    assert "--inspect-bodies" in bodies["request"]["note"]
    assert "--inspect-bodies" in bodies["response"]["note"]


async def test_with_inspect_bodies_text_is_kept_pretty_and_redacted(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    async def respond(request: web.Request) -> web.Response:
        return web.json_response({"access_token": "upstream-said", "taskId": 7})

    upstream.responder = respond
    stack = await make_stack(inspect_bodies="true")
    await stack.client.post("/api/x", json={"client_secret": "client-said", "name": "n"})
    (shown,) = await listed(stack)

    bodies = (await detail(stack, shown["id"]))["bodies"]

    assert isinstance(bodies, dict)
    assert bodies["request"]["text"] == '{\n  "client_secret": "[redacted]",\n  "name": "n"\n}'
    assert bodies["response"]["text"] == '{\n  "access_token": "[redacted]",\n  "taskId": 7\n}'


@pytest.mark.parametrize(
    ("content_type", "size", "note"),
    [
        ("application/pdf", 100, "only text"),
        ("application/json", 64 * 1024 + 1, "over 64 KiB"),
    ],
)
async def test_binary_and_large_bodies_are_not_kept(
    make_stack: MakeStack, upstream: FakeUpstream, content_type: str, size: int, note: str
) -> None:
    async def respond(request: web.Request) -> web.Response:
        return web.Response(body=b"a" * size, content_type=content_type)

    upstream.responder = respond
    stack = await make_stack(inspect_bodies="true")
    await stack.client.get("/api/x")
    (shown,) = await listed(stack)

    bodies = (await detail(stack, shown["id"]))["bodies"]

    assert isinstance(bodies, dict)
    assert "text" not in bodies["response"]
    assert note in bodies["response"]["note"]


async def test_the_buffer_holds_the_last_n_exchanges_and_says_so_in_a_metric(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(inspect_exchanges="2")
    for number in range(3):
        await stack.client.get(f"/api/{number}")

    assert [e["target"] for e in await listed(stack)] == ["/api/2", "/api/1"]
    assert (await stack.client.get("/_proxy/exchange?id=1")).status == 404
    metrics = await (await stack.client.get("/_proxy/metrics")).text()
    assert "smartdoc_proxy_inspector_exchanges 2.0" in metrics


async def test_the_list_is_filtered_by_status_class_client_and_path(make_stack: MakeStack) -> None:
    stack = await make_stack()
    stack.upstream.delays = {}
    for path in ("/api/a", "/api/b", "/other"):
        await stack.client.get(path)
    await stack.client.get("/connect/token")  # the proxy's own answer: 400 invalid_request

    assert [e["target"] for e in await listed(stack, "?status=4xx")] == ["/connect/token"]
    assert [e["target"] for e in await listed(stack, "?path=API")] == ["/api/b", "/api/a"]
    assert await listed(stack, "?client=nobody") == []
    assert (await stack.client.get("/_proxy/exchanges?status=9xx")).status == 400


async def test_the_state_shows_the_token_readiness_and_counts(make_stack: MakeStack) -> None:
    stack = await make_stack(secret_expires="2999-01-01")
    await stack.client.get("/api/x")
    stack.upstream.responder = None

    state = await get_json(stack.client, "/_proxy/state")

    assert isinstance(state, dict)
    assert state["ready"] is True
    (organization,) = state["organizations"]
    assert organization["name"] == "default"
    assert organization["token"]["held"] is True
    assert 3500 < organization["token"]["expiresInSeconds"] <= 3600
    assert organization["token"]["lastFetch"]["outcome"] == "success"
    assert organization["secretExpires"] == "2999-01-01"
    assert organization["secretExpiresInDays"] > 300_000
    assert state["requests"] == {"1xx": 0, "2xx": 1, "3xx": 0, "4xx": 0, "5xx": 0}
    assert state["inspector"] == {"exchanges": 1, "capacity": 200, "bodies": False}


async def test_the_state_says_why_there_is_no_token(make_stack: MakeStack) -> None:
    stack = await make_stack()
    stack.endpoint.failures = [(400, {"error": "invalid_client"})] * 5
    await stack.client.get("/api/x")

    state = await get_json(stack.client, "/_proxy/state")

    assert isinstance(state, dict)
    assert state["ready"] is False
    token = state["organizations"][0]["token"]
    assert token["held"] is False
    assert token["lastFetch"]["outcome"] == "rejected"
    assert "400" in token["lastError"]


async def test_the_page_is_one_file_with_its_script_and_style_and_no_outside_asset(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    for path, kind in zip(PAGES, ("text/html", "text/javascript", "text/css"), strict=True):
        response = await stack.client.get(path)
        assert response.status == 200
        assert response.content_type == kind
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Server"] == "smartdoc-proxy"
        text = await response.text()
        assert "http://" not in text
        assert "https://" not in text
    assert stack.upstream.received == []


async def test_the_page_puts_data_in_with_text_content_never_as_html(make_stack: MakeStack) -> None:
    stack = await make_stack()
    script = await (await stack.client.get("/_proxy/inspector.js")).text()

    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script
    assert "textContent" in script


@pytest.mark.parametrize("path", [*PAGES, *DATA, "/_proxy/events"])
async def test_with_inspector_off_nothing_is_there_and_nothing_is_kept(
    make_stack: MakeStack, path: str
) -> None:
    stack = await make_stack(inspector="off")
    await stack.client.get("/api/x")

    assert (await stack.client.get(path)).status == 404
    metrics = await (await stack.client.get("/_proxy/metrics")).text()
    assert "smartdoc_proxy_inspector_exchanges 0.0" in metrics


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_the_inspector_is_read_only_and_never_forwarded(
    make_stack: MakeStack, method: str
) -> None:
    stack = await make_stack()

    response = await stack.client.request(method, "/_proxy/exchanges", data=b"{}")

    assert response.status == 405
    assert stack.upstream.received == []


async def test_loopback_mode_needs_no_key_even_where_keys_are_required(
    make_stack: MakeStack, keys_file: Path
) -> None:
    stack = await make_stack(inbound_keys_file=str(keys_file))
    assert (await stack.client.get("/api/x")).status == 401

    for path in (*PAGES, *DATA):
        assert (await stack.client.get(path)).status in (200, 404), path  # 404: no exchange 1 yet
    assert (await stack.client.get("/_proxy/exchanges")).status == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8080", "10.0.0.1", "127.0.0.1.evil"]
)
async def test_loopback_mode_answers_only_to_a_loopback_name(
    make_stack: MakeStack, host: str
) -> None:
    stack = await make_stack()

    response = await stack.client.get("/_proxy/exchanges", headers={"Host": host})

    assert response.status == 403
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:80", "a.localhost"]
)
async def test_loopback_names_are_answered(make_stack: MakeStack, host: str) -> None:
    stack = await make_stack()

    assert (await stack.client.get("/_proxy/exchanges", headers={"Host": host})).status == 200


async def test_loopback_mode_refuses_an_admitted_address_from_elsewhere() -> None:
    config = load_config(
        {"client_id": CLIENT_ID, "token_url": "http://127.0.0.1:9/connect/token",
         "upstream": "http://127.0.0.1:9", "allow": "10.0.0.0/8"},
        {"SMARTDOC_CLIENT_SECRET": SECRET},
    )  # fmt: skip
    app = create_app(config)
    request = make_mocked_request(
        "GET", "/_proxy/exchanges", headers={"X-Forwarded-For": "127.0.0.1", "Host": "127.0.0.1"},
        app=app, transport=_Transport("10.1.2.3"),
    )  # fmt: skip

    response = await handle(request, _never)

    assert response.status == 403
    assert "this machine only" in json_of(response.body)["detail"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-Proxy-Key": "wrong"}, 401),
        ({"X-Proxy-Key": BOB_KEY}, 403),
        ({"X-Proxy-Key": ALICE_KEY}, 200),
        ({"Authorization": "Basic " + base64.b64encode(f"x:{ALICE_KEY}".encode()).decode()}, 200),
    ],
)
async def test_keys_mode_admits_only_the_named_clients(
    make_stack: MakeStack, keys_file: Path, headers: dict[str, str], status: int
) -> None:
    stack = await make_stack(
        inbound_keys_file=str(keys_file), inspector="keys", inspector_clients="alice"
    )

    for path in ("/_proxy/", "/_proxy/exchanges", "/_proxy/exchanges.har"):
        assert (await stack.client.get(path, headers=headers)).status == status
    # A named client sees it from any admitted name: a key decides here, not the Host.
    elsewhere = {"Host": "proxy.example.internal"} | headers
    assert (await stack.client.get("/_proxy/state", headers=elsewhere)).status == status


async def test_keys_mode_names_the_viewer_in_the_access_log(
    make_stack: MakeStack, keys_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stack = await make_stack(
        inbound_keys_file=str(keys_file), inspector="keys", inspector_clients="alice"
    )
    with caplog.at_level("INFO", logger="proxy.access"):
        await stack.client.get("/_proxy/state", headers={"X-Proxy-Key": ALICE_KEY})

    assert any("alice GET /_proxy/state 200" in r.getMessage() for r in caplog.records)


async def test_the_metrics_address_serves_no_inspector(
    make_stack: MakeStack,
    aiohttp_client,  # type: ignore[no-untyped-def]
) -> None:
    stack = await make_stack()
    await stack.client.get("/api/x")
    metrics_side = await aiohttp_client(ops_app(stack.client.app))

    assert (await metrics_side.get("/_proxy/exchanges")).status == 404
    assert (await metrics_side.get("/_proxy/metrics")).status == 200


async def test_an_exchange_not_kept_is_404_and_a_bad_id_400(make_stack: MakeStack) -> None:
    stack = await make_stack()

    assert (await stack.client.get("/_proxy/exchange?id=99")).status == 404
    assert (await stack.client.get("/_proxy/exchange?id=x")).status == 400


async def test_the_har_export_is_an_attachment_of_the_filtered_view(make_stack: MakeStack) -> None:
    stack = await make_stack()
    await stack.client.get("/api/ok?q=1")
    await stack.client.get("/connect/token")

    response = await stack.client.get("/_proxy/exchanges.har?status=2xx")

    assert response.status == 200
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="smartdoc-proxy-'
    )
    entries = (await response.json())["log"]["entries"]
    assert [e["request"]["url"] for e in entries] == [f"{stack.config.upstream}/api/ok?q=1"]
    assert entries[0]["request"]["queryString"] == [{"name": "q", "value": "1"}]


async def read_events(response: aiohttp.ClientResponse, until: str) -> list[tuple[str, str]]:
    """(event, data) pairs from a Server-Sent Events stream, until one whose data has
    ``until`` in it; comments and retry lines are skipped."""
    events, kind, data = [], "message", ""
    async with asyncio.timeout(10):
        while line := (await response.content.readline()).decode():
            line = line.rstrip("\n")
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
            elif not line and data:
                events.append((kind, data))
                if until in data:
                    return events
                kind, data = "message", ""
    raise AssertionError(f"the stream ended before {until!r}: {events}")


async def test_the_live_stream_sends_the_kept_exchanges_then_each_new_one_with_the_state(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    await stack.client.get("/api/before")
    async with stack.client.get("/_proxy/events") as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert stream.headers["Cache-Control"] == "no-store"
        await read_events(stream, "/api/before")
        await stack.client.get("/api/after")
        later = await read_events(stream, "/api/after")
        (kind, with_it), *_ = await read_events(stream, '"requests"')

    assert [json.loads(data)["target"] for kind, data in later if kind == "exchange"] == [
        "/api/after"
    ]
    assert kind == "state"
    assert json.loads(with_it)["requests"]["2xx"] == 2


async def test_the_live_stream_resumes_after_the_last_event_id(make_stack: MakeStack) -> None:
    stack = await make_stack()
    for path in ("/api/1", "/api/2", "/api/3"):
        await stack.client.get(path)

    async with stack.client.get("/_proxy/events", headers={"Last-Event-ID": "2"}) as stream:
        events = await read_events(stream, "/api/3")

    assert [json.loads(d)["target"] for k, d in events if k == "exchange"] == ["/api/3"]


async def test_the_live_stream_ends_at_shutdown_without_holding_it_up(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    async with aiohttp.ClientSession() as session:
        stream = await session.get(stack.client.make_url("/_proxy/events"))
        await read_events(stream, "ready")

        started = time.monotonic()
        await stack.client.close()

        assert time.monotonic() - started < 2
        assert await asyncio.wait_for(stream.content.read(), 2) == b""


class _Transport:
    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.peer, 4242) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


async def _never(request: web.Request) -> web.StreamResponse:
    raise AssertionError("the router's handler is never called")


async def test_the_demo_says_where_its_inspector_is_and_it_shows_the_requests_with_bodies() -> None:
    async with proxy_command("demo", "--listen", f"127.0.0.1:{free_port()}") as process:
        assert process.stdout is not None
        banner = ""
        while "/_proxy/" not in banner:
            line = await asyncio.wait_for(process.stdout.readline(), 20)
            assert line, f"the demo exited before naming its inspector: {banner}"
            banner += line.decode()
        inspector = next(word for word in banner.split() if word.endswith("/_proxy/"))
        proxy_url = inspector.removesuffix("/_proxy/")
        async with aiohttp.ClientSession() as session:
            task = {"displayName": "d", "externalId": "e", "context": {"url": "https://x.test/a"}}
            async with session.post(f"{proxy_url}/api/v1.0/external/sdtask/process", json=task):
                pass
            async with session.get(inspector) as page:
                assert page.status == 200
                assert "smartdoc-proxy" in await page.text()
            async with session.get(f"{inspector}exchanges") as listing:
                (shown,) = (await listing.json())["exchanges"]
            async with session.get(f"{inspector}exchange?id={shown['id']}") as one:
                bodies = (await one.json())["bodies"]
        assert json.loads(bodies["request"]["text"]) == task
        assert '"taskId"' in bodies["response"]["text"]
