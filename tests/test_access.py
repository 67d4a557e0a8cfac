"""Who gets in: the allow-list, named inbound keys, and local tokens from /connect/token."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
import requests
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from proxy.access import (
    Access,
    InboundKey,
    Keys,
    admitted,
    basic_credentials,
    fingerprint,
    issue_local_token,
    parse_keys,
    verify_local_token,
)
from proxy.app import create_app
from proxy.config import ConfigError, IPNetwork, load_config
from proxy.handler import handle
from tests.conftest import MakeStack, Stack
from tests.fakes import CLIENT_ID, SECRET

ALICE_KEY = "alice-key-0123456789abcdef"
BOB_KEY = "bob-key-fedcba9876543210"
UNNAMED_KEY = "unnamed-key-5555555555"
KEYS_FILE = f"""# clients of the proxy
alice {ALICE_KEY}
bob   {BOB_KEY}   # the night batch

{UNNAMED_KEY}
"""


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "inbound-keys"
    path.write_text(KEYS_FILE)
    return path


async def keyed_stack(make_stack: MakeStack, keys_file: Path) -> Stack:
    return await make_stack(inbound_keys_file=str(keys_file))


def test_a_keys_file_names_its_clients_and_fingerprints_unnamed_keys() -> None:
    keys = parse_keys(KEYS_FILE, "keys")
    assert keys.names == {"alice", "bob", fingerprint(UNNAMED_KEY)}
    assert keys.find(BOB_KEY) == InboundKey("bob", BOB_KEY)
    assert keys.find("nope") is None
    assert fingerprint(UNNAMED_KEY).startswith("key-")
    assert UNNAMED_KEY not in fingerprint(UNNAMED_KEY)
    for key in (ALICE_KEY, BOB_KEY, UNNAMED_KEY):
        assert key not in repr(keys)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a b c\n", "line 1: expected KEY or NAME KEY"),
        ("bad/name k1\n", "line 1: a name is"),
        ("anonymous k1\n", "line 1: a name is"),
        ("a k1\na k2\n", "line 2: this name or key is listed twice"),
        ("a k1\nb k1\n", "line 2: this name or key is listed twice"),
    ],
)
def test_a_bad_keys_file_is_refused_naming_the_line_never_the_key(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_keys(text, "keys")
    assert problem in str(caught.value)
    assert "k1" not in str(caught.value).replace("line", "")


@pytest.mark.parametrize(
    ("peer", "allow", "expected"),
    [
        ("127.0.0.1", [], True),
        ("127.9.9.9", [], True),
        ("::1", [], True),
        ("10.1.2.3", [], False),
        ("10.1.2.3", ["10.0.0.0/8"], True),
        ("::ffff:10.1.2.3", ["10.0.0.0/8"], True),
        ("192.168.1.1", ["10.0.0.0/8"], False),
        ("fd00::5", ["fd00::/8"], True),
        ("fe80::1%eth0", ["fe80::/10"], True),
        (None, ["0.0.0.0/0"], False),
        ("not-an-address", ["0.0.0.0/0"], False),
    ],
)
def test_admitted(peer: str | None, allow: list[str], expected: bool) -> None:
    import ipaddress

    networks: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n) for n in allow)
    assert admitted(peer, networks) is expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Basic " + base64.b64encode(b"u:p:q").decode(), ("u", "p:q")),
        ("basic " + base64.b64encode(b":key").decode(), ("", "key")),
        ("Basic " + base64.b64encode(b"nocolon").decode(), None),
        ("Basic !!!", None),
        ("Bearer abc", None),
        ("", None),
    ],
)
def test_basic_credentials(header: str, expected: tuple[str, str] | None) -> None:
    assert basic_credentials(header) == expected


def test_local_tokens_expire_and_die_with_their_key() -> None:
    alice = InboundKey("alice", ALICE_KEY)
    keys = Keys([alice])
    token = issue_local_token(alice, now=1000, lifetime=3600)
    assert ALICE_KEY not in token
    assert verify_local_token(token, keys, now=1001) == alice
    assert verify_local_token(token, keys, now=4600) is None  # expired
    assert verify_local_token(token, Keys([]), now=1001) is None  # key removed
    assert verify_local_token(token, Keys([InboundKey("alice", "new")]), now=1001) is None
    assert verify_local_token(token[:-2] + "AA", keys, now=1001) is None  # tampered
    assert verify_local_token("sdp1.garbage", keys, now=1001) is None
    # Any replica holding the same keys file verifies it: nothing but the key is needed.
    assert verify_local_token(token, Keys([InboundKey("alice", ALICE_KEY)]), now=1) == alice


async def test_with_keys_a_request_without_one_gets_401_asking_for_basic(
    make_stack: MakeStack, keys_file: Path
) -> None:
    stack = await keyed_stack(make_stack, keys_file)
    for headers in ({}, {"X-Proxy-Key": "wrong"}, {"Authorization": "Bearer real-org-token"}):
        response = await stack.client.get("/api/x", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="smartdoc-proxy"'
        assert response.content_type == "application/problem+json"
    assert stack.upstream.received == []


async def test_a_key_in_a_header_or_as_basic_password_gets_in_and_never_leaves(
    make_stack: MakeStack, keys_file: Path
) -> None:
    stack = await keyed_stack(make_stack, keys_file)
    basic = "Basic " + base64.b64encode(f"anyone:{BOB_KEY}".encode()).decode()
    for headers in ({"X-Proxy-Key": ALICE_KEY}, {"Authorization": basic}):
        response = await stack.client.get("/api/x", headers=headers)
        assert response.status == 200
    for received in stack.upstream.received:
        assert "X-Proxy-Key" not in received.headers
        assert received.headers["Authorization"] == "Bearer token-1"
        assert ALICE_KEY not in str(received.headers)
        assert BOB_KEY not in str(received.headers)


async def test_the_client_name_is_in_the_access_log_and_the_metrics(
    make_stack: MakeStack, keys_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    stack = await keyed_stack(make_stack, keys_file)
    await (await stack.client.get("/api/x", headers={"X-Proxy-Key": ALICE_KEY})).read()
    metrics = await (
        await stack.client.get("/_proxy/metrics", headers={"X-Proxy-Key": BOB_KEY})
    ).text()
    assert 'client="alice"' in metrics
    lines = [r.getMessage() for r in caplog.records if r.name == "proxy.access"]
    assert any(" alice GET /api/x 200 " in line for line in lines)
    assert any(line.startswith("127.0.0.1 ") for line in lines)
    everything = "\n".join(r.getMessage() for r in caplog.records) + metrics
    assert ALICE_KEY not in everything
    assert BOB_KEY not in everything


async def test_probes_need_no_key_and_metrics_do(make_stack: MakeStack, keys_file: Path) -> None:
    stack = await keyed_stack(make_stack, keys_file)
    for path in ("/_proxy/healthz", "/_proxy/readyz"):
        response = await stack.client.get(path)
        assert response.status == 200
        text = await response.text()
        assert "alice" not in text
        assert "token-1" not in text
    assert (await stack.client.get("/_proxy/metrics")).status == 401


async def _post_token(stack: Stack, data: dict[str, str], **kwargs: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = await stack.client.post("/connect/token", data=data, **kwargs)  # type: ignore[arg-type]
    return response.status, json.loads(await response.read())


async def test_connect_token_issues_local_tokens_in_the_vendor_shapes(
    make_stack: MakeStack, keys_file: Path
) -> None:
    stack = await keyed_stack(make_stack, keys_file)
    form = {"grant_type": "client_credentials", "scope": "WebAPI"}
    status, body = await _post_token(
        stack, form | {"client_id": "alice", "client_secret": ALICE_KEY}
    )
    assert status == 200
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "WebAPI")
    local = str(body["access_token"])
    assert local != "token-1"
    assert ALICE_KEY not in local
    for wrong in ({"client_id": "alice", "client_secret": BOB_KEY}, {"client_id": "x"}):
        assert await _post_token(stack, form | wrong) == (400, {"error": "invalid_client"})
    bad_grant = {"grant_type": "password", "client_id": "alice", "client_secret": ALICE_KEY}
    assert await _post_token(stack, bad_grant) == (400, {"error": "unsupported_grant_type"})
    response = await stack.client.get("/api/x", headers={"Authorization": f"Bearer {local}"})
    assert response.status == 200
    assert stack.upstream.received[-1].headers["Authorization"] == "Bearer token-1"
    assert [r for r in stack.endpoint.requests if r.form.get("client_id") == "alice"] == []


async def test_connect_token_takes_basic_client_authentication(
    make_stack: MakeStack, keys_file: Path
) -> None:
    stack = await keyed_stack(make_stack, keys_file)
    basic = "Basic " + base64.b64encode(f"bob:{BOB_KEY}".encode()).decode()
    status, body = await _post_token(
        stack, {"grant_type": "client_credentials"}, headers={"Authorization": basic}
    )
    assert status == 200
    assert body["token_type"] == "Bearer"


async def test_without_keys_connect_token_takes_any_credentials(make_stack: MakeStack) -> None:
    stack = await make_stack()
    status, body = await _post_token(
        stack, {"grant_type": "client_credentials", "client_id": "me", "client_secret": "x"}
    )
    assert status == 200
    assert body["access_token"] != "token-1"
    assert stack.endpoint.requests[0].form["client_id"] == CLIENT_ID


def vendor_sample(base_url: str, client_id: str, client_secret: str) -> object:
    """SmartDocumentor's documented integration, as its guide writes it with requests: ask
    /connect/token for a token, then call the API with it."""
    token_response = requests.post(
        f"{base_url}/connect/token",
        data={
            "grant_type": "client_credentials",
            "scope": "WebAPI",
            "client_id": client_id,
            "client_secret": client_secret,
        },
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    token_response.raise_for_status()
    access_token = token_response.json()["access_token"]
    response = requests.get(
        f"{base_url}/api/v1.0/external/sdworkspace/CurrentWorkspaces",
        headers={"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


async def test_the_vendors_sample_code_runs_unchanged_with_a_key(
    make_stack: MakeStack, keys_file: Path
) -> None:
    stack = await keyed_stack(make_stack, keys_file)
    base = str(stack.client.make_url("")).rstrip("/")
    answer = await asyncio.to_thread(vendor_sample, base, "alice", ALICE_KEY)
    assert answer == {"path": "/api/v1.0/external/sdworkspace/CurrentWorkspaces", "bytes": 0}
    assert stack.upstream.tokens_seen == ["token-1"]
    with pytest.raises(requests.HTTPError):
        await asyncio.to_thread(vendor_sample, base, "alice", SECRET)


async def test_a_url_with_the_key_as_password_works_for_clients_that_take_only_a_url(
    make_stack: MakeStack, keys_file: Path
) -> None:
    stack = await keyed_stack(make_stack, keys_file)
    url = str(stack.client.make_url("/api/x")).replace("http://", f"http://legacy:{BOB_KEY}@")
    response = await asyncio.to_thread(requests.get, url, timeout=10)
    assert response.status_code == 200


async def test_an_address_outside_the_allow_list_gets_403_whatever_it_claims() -> None:
    config = load_config(
        {"client_id": CLIENT_ID, "token_url": "http://127.0.0.1:9/connect/token",
         "upstream": "http://127.0.0.1:9", "allow": "192.168.0.0/16"},
        {"SMARTDOC_CLIENT_SECRET": SECRET},
    )  # fmt: skip
    app = create_app(config)
    for peer, expected in (("10.1.2.3", 403), ("192.168.7.7", 404)):
        request = make_mocked_request(
            "GET", "/_proxy/nothing", headers={"X-Forwarded-For": "127.0.0.1"}, app=app,
            transport=_Transport(peer),
        )  # fmt: skip
        response = await handle(request, _never)
        assert response.status == expected
        assert response.content_type == "application/problem+json"


class _Transport:
    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.peer, 4242) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


async def _never(request: web.Request) -> web.StreamResponse:
    raise AssertionError("the router's handler is never called")


def test_access_without_keys_names_everyone_anonymous() -> None:
    assert Access().client({"X-Proxy-Key": "whatever"}) == "anonymous"
