"""Nothing secret ever reaches the inspector: its page, its data endpoints, its live stream
and its HAR export are searched for the organization's token, its client secret and every
inbound key, raw and encoded, after clients and an upstream have done their worst."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

from aiohttp import web

from tests.conftest import MakeStack, Stack
from tests.fakes import SECRET, FakeUpstream

ALICE_KEY = "alice-key-0123456789abcdef"
BOB_KEY = "bob-key-fedcba9876543210"
UNNAMED_KEY = "Zp8eK1unnamed/key+with=odd"


def forms(secret: str) -> set[str]:
    raw = secret.encode()
    b64, urlsafe = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        b64,
        b64.rstrip("="),
        urlsafe.rstrip("="),
    }


def basic(user: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


async def echo(request: web.Request) -> web.StreamResponse:
    """The worst upstream: it tells the client everything it received, the token included,
    in its body, in a header and in a cookie."""
    body = await request.read()
    authorization = request.headers.get("Authorization", "")
    if request.path.endswith("/text"):
        return web.Response(text=f"you sent {authorization}", content_type="text/plain")
    return web.json_response(
        {"headers": dict(request.headers), "body": body.decode(), "access_token": authorization},
        headers={"X-Echo": authorization, "Set-Cookie": f"session={authorization}"},
    )


async def traffic(stack: Stack) -> str:
    """Clients doing what they should and what they should not; returns the local token
    alice got from the proxy's /connect/token."""
    client = stack.client
    await client.get("/api/echo", headers={"X-Proxy-Key": ALICE_KEY, "Cookie": "a=b"})
    await client.get(
        f"/api/echo?key={BOB_KEY}&k2={quote(UNNAMED_KEY)}",
        headers={"Authorization": basic("bob", BOB_KEY)},
    )
    token_answer = await client.post(
        "/connect/token",
        data={"grant_type": "client_credentials", "client_id": "alice", "client_secret": ALICE_KEY},
    )
    local_token = (await token_answer.json())["access_token"]
    await client.get("/api/echo/text", headers={"Authorization": f"Bearer {local_token}"})
    await client.post(
        "/api/echo",
        json={"client_secret": SECRET, "note": f"my key is {UNNAMED_KEY}", "t": local_token},
        headers={"X-Proxy-Key": UNNAMED_KEY},
    )
    await client.post(
        "/api/echo",
        data=f"access_token={quote_plus(local_token)}&secret={quote_plus(SECRET)}",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Proxy-Key": BOB_KEY},
    )
    await client.get("/api/refused", headers={"X-Proxy-Key": "wrong", "Cookie": f"k={BOB_KEY}"})
    await client.get(
        "/api/echo",
        headers={"Proxy-Authorization": basic("alice", ALICE_KEY), "X-Proxy-Key": ALICE_KEY},
    )
    return local_token


async def everything_it_shows(stack: Stack) -> dict[str, str]:
    """Every byte the inspector serves, by where it came from."""
    client = stack.client
    shown = {}
    for path in ("/_proxy/", "/_proxy/inspector.js", "/_proxy/inspector.css", "/_proxy/state",
                 "/_proxy/exchanges", "/_proxy/exchanges?path=echo", "/_proxy/exchanges.har",
                 "/_proxy/exchanges.har?status=4xx"):  # fmt: skip
        response = await client.get(path)
        assert response.status == 200, path
        shown[path] = await response.text()
    for summary in json.loads(shown["/_proxy/exchanges"])["exchanges"]:
        path = f"/_proxy/exchange?id={summary['id']}"
        shown[path] = await (await client.get(path)).text()
    async with client.get("/_proxy/events") as stream:
        text = ""
        async with asyncio.timeout(10):
            while "/api/refused" not in text or not text.endswith("\n\n"):
                text += (await stream.content.readany()).decode()
        shown["/_proxy/events"] = text
    return shown


async def test_no_token_secret_or_key_reaches_the_inspector_in_any_form(
    make_stack: MakeStack, upstream: FakeUpstream, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"alice {ALICE_KEY}\nbob {BOB_KEY}\n{UNNAMED_KEY}\n")
    upstream.responder = echo
    stack = await make_stack(inbound_keys_file=str(keys), inspect_bodies="true")
    local_token = await traffic(stack)
    (token,) = stack.endpoint.issued

    shown = await everything_it_shows(stack)

    secrets = {
        "the organization's token": forms(token),
        "the client secret": forms(SECRET),
        "alice's key": forms(ALICE_KEY) | {basic("alice", ALICE_KEY).split()[1]},
        "bob's key": forms(BOB_KEY) | {basic("bob", BOB_KEY).split()[1]},
        "the unnamed key": forms(UNNAMED_KEY),
        "alice's local token": forms(local_token),
    }
    for what, encoded in secrets.items():
        for form in encoded:
            for where, text in shown.items():
                assert form not in text, f"{what} ({form!r}) in {where}"
    # The search found nothing because the secrets were redacted, not because nothing came:
    details = "".join(text for where, text in shown.items() if "exchange?id" in where)
    assert details.count("[redacted]") > 20
    assert '["X-Echo", "Bearer [redacted]"]' in details
    assert '["Set-Cookie", "[redacted]"]' in details
    assert "my key is [redacted]" in details
    assert "you sent Bearer [redacted]" in details
    # … and the upstream did receive the real token, which it echoed back to the client.
    assert stack.upstream.received[0].headers["Authorization"] == f"Bearer {token}"


async def test_a_client_secret_kept_in_a_file_is_scrubbed_too(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    secret_file = tmp_path / "client-secret"
    secret_file.write_text("file-kept-S3cret\n")
    stack = await make_stack(
        env={"SMARTDOC_CLIENT_SECRET": ""},
        client_secret_file=str(secret_file),
        inspect_bodies="true",
    )
    await stack.client.post("/api/x?s=file-kept-S3cret", json={"pasted": "file-kept-S3cret"})

    shown = await (await stack.client.get("/_proxy/exchange?id=1")).text()

    assert "file-kept-S3cret" not in shown
    assert "pasted" in shown
    assert stack.endpoint.requests[0].form["client_secret"] == "file-kept-S3cret"


async def test_a_token_replaced_by_a_refresh_is_still_scrubbed_from_what_came_before(
    make_stack: MakeStack, upstream: FakeUpstream
) -> None:
    # A replaced token stays valid upstream until it expires, and the buffer still holds the
    # exchange whose body echoed it.
    upstream.responder = echo
    stack = await make_stack(inspect_bodies="true")
    await stack.client.get("/api/echo/text")
    (old,) = stack.endpoint.issued
    upstream.rejected.add(old)  # the next request's 401 makes the proxy fetch a new token

    answer = await stack.client.get("/api/echo/text")

    _, new = stack.endpoint.issued
    assert (answer.status, await answer.text()) == (200, f"you sent Bearer {new}")
    paths = ("/_proxy/exchanges.har", "/_proxy/exchange?id=1")
    shown = {path: await (await stack.client.get(path)).text() for path in paths}
    for form in forms(old) | forms(new):
        for where, text in shown.items():
            assert form not in text, f"{form!r} in {where}"
    assert "you sent Bearer [redacted]" in shown["/_proxy/exchange?id=1"]
