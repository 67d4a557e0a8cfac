"""Several organizations: which organization a request belongs to (by its address, by its key),
and each one's own token, on real sockets, with a fake token endpoint per organization."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proxy.access import InboundKey
from proxy.config import ConfigError
from proxy.errors import AccessDenied, KeyRequired
from proxy.organizations import Caller, Listeners, organization_for
from tests.organization_stack import (
    MakeOrganizations,
    OrganizationsStack,
    Spec,
    organizations_stack,
)

ACME_KEY, INITECH_KEY = "acme-key-0123456789abcdef", "initech-key-fedcba9876543210"
# acme: its own address and keys; globex: its own address, no keys; initech: keys only.
THREE = {
    "acme": Spec(keys={"billing": ACME_KEY}),
    "globex": Spec(),
    "initech": Spec(own_address=False, keys={"batch": INITECH_KEY}),
}


@pytest.fixture
async def make_organizations(aiohttp_server, tmp_path) -> AsyncIterator[MakeOrganizations]:  # type: ignore[no-untyped-def]
    async with contextlib.AsyncExitStack() as stack:

        async def make(specs: dict[str, Spec], **flags: str) -> OrganizationsStack:
            return await stack.enter_async_context(
                organizations_stack(aiohttp_server, tmp_path, specs, **flags)
            )

        yield make


ALICE = InboundKey("alice", "k1", "acme")
BOB = InboundKey("bob", "k2", "globex")


@pytest.mark.parametrize(
    ("serves", "presented", "keyed", "expected"),
    [
        # The shared address of several organizations: the key chooses.
        (None, ALICE, {"acme", "globex"}, Caller("acme", "alice")),
        (None, BOB, {"acme", "globex"}, Caller("globex", "bob")),
        (None, None, {"acme", "globex"}, KeyRequired),
        # An organization's own address, with keys: only its own.
        ("acme", ALICE, {"acme"}, Caller("acme", "alice")),
        ("acme", BOB, {"acme", "globex"}, AccessDenied),
        ("acme", None, {"acme"}, KeyRequired),
        # Without keys: the address alone; a key counts for nothing there.
        ("globex", None, {"acme"}, Caller("globex", "anonymous")),
        ("globex", ALICE, {"acme"}, Caller("globex", "anonymous")),
        # The single-organization settings: the shared address is default's own.
        ("default", None, set(), Caller("default", "anonymous")),
        ("default", InboundKey("carol", "k3"), {"default"}, Caller("default", "carol")),
        ("default", None, {"default"}, KeyRequired),
    ],
)
def test_organization_for(
    serves: str | None,
    presented: InboundKey | None,
    keyed: set[str],
    expected: Caller | type[Exception],
) -> None:
    if isinstance(expected, Caller):
        assert organization_for(serves, presented, keyed) == expected
    else:
        with pytest.raises(expected):
            organization_for(serves, presented, keyed)


def test_the_401_of_the_shared_address_says_how_to_choose() -> None:
    with pytest.raises(KeyRequired) as caught:
        organization_for(None, None, {"acme"}, {"acme": "127.0.0.1:8081"})
    assert "X-Proxy-Key" in caught.value.detail
    assert "acme at 127.0.0.1:8081" in caught.value.detail


SHARED = Listeners(None, {("127.0.0.1", 8081): "acme", ("0.0.0.0", 8082): "globex"})  # noqa: S104


@pytest.mark.parametrize(
    ("sockname", "serves"),
    [
        (("127.0.0.1", 8081), "acme"),
        (("127.0.0.1", 8080), None),
        (("10.1.2.3", 8081), None),  # another address on acme's port is not acme's socket
        (("10.1.2.3", 8082), "globex"),  # globex listens on every address
        (("::ffff:10.1.2.3", 8082, 0, 0), "globex"),
        (None, None),
        ("/run/proxy.sock", None),
    ],
)
def test_listeners_tell_an_organization_s_socket_by_its_local_address(
    sockname: object, serves: str | None
) -> None:
    assert SHARED.serving(sockname) == serves


async def test_each_address_and_each_key_reaches_exactly_its_organization_and_token(
    make_organizations: MakeOrganizations,
) -> None:
    stack = await make_organizations(THREE)
    cases = [
        ("acme", ACME_KEY, "acme-1"),
        ("globex", None, "globex-1"),
        ("globex", ACME_KEY, "globex-1"),  # globex has no keys: its address alone decides
        (None, ACME_KEY, "acme-1"),
        (None, INITECH_KEY, "initech-1"),
    ]
    for via, key, token in cases:
        answer = await stack.get("/api/x", via=via, key=key)
        assert answer.status == 200, (via, key, answer.text)
        assert stack.upstream.tokens_seen[-1] == token, (via, key)
    for name, endpoint in stack.endpoints.items():
        assert [r.form["client_id"] for r in endpoint.requests] == [f"{name}-client"]
    for received in stack.upstream.received:
        assert "X-Proxy-Key" not in received.headers


@pytest.mark.parametrize(
    ("via", "key", "status"),
    [
        ("acme", INITECH_KEY, 403),  # another organization's key on acme's own address
        ("acme", None, 401),
        ("acme", "no-such-key", 401),
        (None, None, 401),
        (None, "no-such-key", 401),
    ],
)
async def test_a_request_that_chooses_no_organization_of_its_own_is_refused(
    make_organizations: MakeOrganizations, via: str | None, key: str | None, status: int
) -> None:
    stack = await make_organizations(THREE)

    answer = await stack.get("/api/x", via=via, key=key)

    assert answer.status == status
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert stack.upstream.received == []


async def test_the_shared_address_without_a_key_says_how_to_choose(
    make_organizations: MakeOrganizations,
) -> None:
    stack = await make_organizations(THREE)

    answer = await stack.get("/api/x")

    detail = json.loads(answer.text)["detail"]
    assert "several organizations" in detail
    assert "X-Proxy-Key" in detail
    assert f"acme at {stack.sockets.organizations['acme'].listen}" in detail
    assert answer.headers["WWW-Authenticate"] == 'Basic realm="smartdoc-proxy"'


async def test_local_tokens_act_as_their_key_s_organization_only(
    make_organizations: MakeOrganizations,
) -> None:
    stack = await make_organizations(THREE)
    form = {"grant_type": "client_credentials", "client_id": "batch", "client_secret": INITECH_KEY}

    issued = await stack.post("/connect/token", data=form)
    local = json.loads(issued.text)["access_token"]
    refused = await stack.post("/connect/token", via="acme", data=form)
    anyone = await stack.post("/connect/token", via="globex", data=form | {"client_secret": "x"})

    assert issued.status == 200
    assert json.loads(refused.text) == {"error": "invalid_client"}
    assert anyone.status == 200  # globex has no keys: any credentials, as without keys
    bearer = {"Authorization": f"Bearer {local}"}
    assert (await stack.get("/api/x", **bearer)).status == 200
    assert stack.upstream.tokens_seen == ["initech-1"]
    assert (await stack.get("/api/x", via="acme", **bearer)).status == 403


async def test_concurrent_cold_requests_for_n_organizations_cause_exactly_n_token_requests(
    make_organizations: MakeOrganizations,
) -> None:
    stack = await make_organizations(THREE)
    for endpoint in stack.endpoints.values():
        endpoint.delay_seconds = 0.3
    routes = [("acme", ACME_KEY, "acme-1"), ("globex", None, "globex-1"),
              (None, INITECH_KEY, "initech-1")] * 10  # fmt: skip

    answers = await asyncio.gather(*(stack.get("/api/x", via=v, key=k) for v, k, _ in routes))

    assert [answer.status for answer in answers] == [200] * len(routes)
    assert sorted(stack.upstream.tokens_seen) == sorted(token for _, _, token in routes)
    assert [len(endpoint.requests) for endpoint in stack.endpoints.values()] == [1, 1, 1]


async def test_a_key_listed_for_two_organizations_is_refused_naming_both_files_never_the_key(
    make_organizations: MakeOrganizations, tmp_path: Path
) -> None:
    twice = {"acme": Spec(keys={"billing": ACME_KEY}), "globex": Spec(keys={"other": ACME_KEY})}

    with pytest.raises(ConfigError) as caught:
        await make_organizations(twice)

    message = str(caught.value)
    acme, globex = tmp_path / "acme-keys", tmp_path / "globex-keys"
    assert message.startswith(f"[organizations.globex] inbound_keys_file {globex}: line 1: ")
    assert f"organization 'acme' ([organizations.acme] inbound_keys_file {acme}, line 1)" in message
    assert ACME_KEY not in message
