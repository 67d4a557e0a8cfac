"""Several organizations, isolated: one organization's failing token endpoint or rejected secret
leaves the others' requests untouched, and readiness, metrics and the access log say which
organization is which."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from proxy import logs, server
from proxy.config import Listen
from proxy.keys import TOKEN_CACHES
from proxy.ops import READY_WAIT_SECONDS
from proxy.reload import reloaded
from tests.organization_stack import (
    MakeOrganizations,
    OrganizationsStack,
    Spec,
    fetch,
    organizations_stack,
)

TWO = {"acme": Spec(), "globex": Spec()}


@pytest.fixture
async def make_organizations(aiohttp_server, tmp_path) -> AsyncIterator[MakeOrganizations]:  # type: ignore[no-untyped-def]
    async with contextlib.AsyncExitStack() as stack:

        async def make(specs: dict[str, Spec], **flags: str) -> OrganizationsStack:
            return await stack.enter_async_context(
                organizations_stack(aiohttp_server, tmp_path, specs, **flags)
            )

        yield make


async def test_a_rejected_secret_leaves_the_others_untouched_and_recovers_once_fixed(
    make_organizations: MakeOrganizations,
) -> None:
    stack = await make_organizations(TWO)
    await _settled(stack)
    stack.secret_file("acme").write_text("an-expired-secret\n", encoding="utf-8")
    stack.clock.advance(4000)  # both tokens expired: each organization fetches anew
    rejected = await stack.get("/api/x", via="acme")
    served = await stack.get("/api/x", via="globex")
    readiness = await stack.get("/_proxy/readyz")

    assert (rejected.status, json.loads(rejected.text)["title"]) == (
        502,
        "SmartDocumentor rejected the proxy's credentials",
    )
    assert served.status == 200
    assert stack.upstream.tokens_seen == ["globex-2"]
    states = json.loads(readiness.text)["organizations"]
    assert (readiness.status, states["acme"]["ready"], states["globex"]["ready"]) == (
        200,
        False,
        True,
    )
    assert states["acme"]["code"] == "invalid_client"

    stack.secret_file("acme").write_text("acme-secret\n", encoding="utf-8")
    # As SIGHUP does: the running configuration again, and every backoff ended.
    assert server.reload(stack.app, None, lambda: stack.config)
    await _eventually(lambda: stack.get("/api/x", via="acme"), 200)
    assert stack.upstream.tokens_seen[-1] == "acme-2"
    assert len(stack.endpoints["globex"].requests) == 2


async def test_a_hanging_token_endpoint_of_one_organization_delays_no_other(
    make_organizations: MakeOrganizations,
) -> None:
    stack = await make_organizations(TWO)
    await _settled(stack)
    stack.endpoints["acme"].failures = ["hang"]
    stack.clock.advance(4000)
    hanging = asyncio.ensure_future(stack.get("/api/x", via="acme"))
    started = time.monotonic()

    served = await stack.get("/api/x", via="globex")
    readiness = await stack.get("/_proxy/readyz")
    one = await stack.get("/_proxy/readyz/globex")

    assert served.status == 200
    assert (readiness.status, one.status) == (200, 200)
    assert time.monotonic() - started < READY_WAIT_SECONDS + 1.0
    states = json.loads(readiness.text)["organizations"]
    assert states["acme"] == {"ready": False, "reason": "the token endpoint has not answered yet"}
    assert states["globex"]["ready"] is True
    assert not hanging.done()
    hanging.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await hanging


async def test_readiness_answers_for_all_and_for_each_organization(
    make_organizations: MakeOrganizations,
) -> None:
    stack = await make_organizations(TWO)
    await _settled(stack)

    both = await stack.get("/_proxy/readyz")
    acme = await stack.get("/_proxy/readyz/acme", via="globex")  # any address answers for any
    unknown = await stack.get("/_proxy/readyz/initech")
    for name in TWO:
        stack.secret_file(name).write_text("wrong\n", encoding="utf-8")
    stack.clock.advance(4000)
    none = await stack.get("/_proxy/readyz")
    broken = await stack.get("/_proxy/readyz/acme")

    body = json.loads(both.text)
    assert (both.status, body["status"], sorted(body["organizations"])) == (
        200,
        "ready",
        sorted(TWO),
    )
    assert 3500 < body["organizations"]["acme"]["token_expires_in_seconds"] <= 3600
    assert acme.status == 200
    assert json.loads(acme.text)["organization"] == "acme"
    assert unknown.status == 404
    assert (none.status, json.loads(none.text)["status"]) == (503, "not ready")
    assert broken.status == 503
    assert broken.headers["Content-Type"].startswith("application/problem+json")
    assert json.loads(broken.text)["code"] == "invalid_client"


async def test_metrics_are_labelled_by_organization_next_to_the_client(
    make_organizations: MakeOrganizations,
) -> None:
    stack = await make_organizations(
        {"acme": Spec(keys={"billing": "acme-key-0123"}), "globex": Spec()}
    )
    await stack.get("/api/x", via="acme", key="acme-key-0123")
    await stack.get("/api/x", via="globex")
    await stack.get("/api/x")  # no organization chosen: 401
    await fetch("TRACE", stack.url("globex") + "/api/x", {})  # refused, at globex's address

    text = (await stack.get("/_proxy/metrics", via="globex")).text

    for line in (
        'smartdoc_proxy_requests_total{client="billing",method="GET",operation="other",'
        'organization="acme",status="200"} 1.0',
        'smartdoc_proxy_requests_total{client="anonymous",method="GET",operation="other",'
        'organization="globex",status="200"} 1.0',
        'smartdoc_proxy_requests_total{client="anonymous",method="GET",operation="other",'
        'organization="-",status="401"} 1.0',
        'smartdoc_proxy_requests_total{client="anonymous",method="OTHER",operation="other",'
        'organization="globex",status="405"} 1.0',
        'smartdoc_proxy_token_fetches_total{organization="acme",outcome="success"} 1.0',
        'smartdoc_proxy_token_fetches_total{organization="globex",outcome="rejected"} 0.0',
        'smartdoc_proxy_secret_expires_in_days{organization="acme"} NaN',
    ):
        assert line in text, line
    expiry = [line for line in text.splitlines() if line.startswith("smartdoc_proxy_token_exp")]
    assert [line.split("{")[1].split("}")[0] for line in expiry] == [
        'organization="acme"',
        'organization="globex"',
    ]


async def test_the_access_and_token_log_lines_name_the_organization(
    make_organizations: MakeOrganizations, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stack = await make_organizations(
        {"acme": Spec(keys={"billing": "acme-key-0123"}), "globex": Spec()}
    )
    await stack.get("/api/x", key="acme-key-0123")
    await stack.get("/api/x", via="globex")

    records = [r for r in caplog.records if r.name == logs.ACCESS_LOGGER]
    lines = [record.getMessage() for record in records]
    assert " billing@acme GET /api/x 200 " in lines[0]
    assert " anonymous@globex GET /api/x 200 " in lines[1]
    assert json.loads(logs.JsonFormatter().format(records[0]))["organization"] == "acme"
    said = [r.getMessage() for r in caplog.records if r.name == "proxy.tokens"]
    assert sorted(said) == ["acme: token fetched: lifetime 3600 s",
                            "globex: token fetched: lifetime 3600 s"]  # fmt: skip
    assert "acme-key-0123" not in "\n".join(r.getMessage() for r in caplog.records)


async def test_a_reload_keeps_the_running_organizations_when_their_set_or_addresses_change(
    make_organizations: MakeOrganizations,
) -> None:
    stack = await make_organizations(TWO)
    running = stack.config
    acme, globex = running.organizations
    moved = replace(running, organizations=(replace(acme, listen=Listen("127.0.0.1", 9)), globex))
    fewer = replace(running, organizations=(acme,))
    new_client = replace(running, organizations=(replace(acme, client_id="acme-2"), globex))

    assert reloaded(running, moved) == (running, ["organizations"])
    assert reloaded(running, fewer) == (running, ["organizations"])
    assert reloaded(running, new_client) == (new_client, [])
    caches = stack.app[TOKEN_CACHES]
    assert sorted(caches) == ["acme", "globex"]


async def _settled(stack: OrganizationsStack) -> None:
    """Until every organization's first token has arrived."""
    for cache in stack.app[TOKEN_CACHES].values():
        await cache.get()


async def _eventually(probe: object, status: int) -> None:
    for _ in range(100):
        if (await probe()).status == status:  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never {status}")
