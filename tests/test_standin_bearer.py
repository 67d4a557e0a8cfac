"""Every `/api` call needs a Bearer token the stand-in issued, unrevoked and unexpired."""

from __future__ import annotations

import pytest

from proxy.standin import StandinSettings
from proxy.standin.bearer import bearer_token, challenge
from proxy.standin.tokens import TokenStore, TokenVerdict
from tests.standin_helpers import API, ClientFactory, assert_problem, start_standin

WORKSPACES = API + "/sdworkspace/CurrentWorkspaces"


async def test_a_valid_token_is_accepted(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    token = await standin.token()
    response = await standin.client.get(WORKSPACES, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200


async def test_the_bearer_scheme_is_case_insensitive(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    token = await standin.token()
    response = await standin.client.get(WORKSPACES, headers={"Authorization": f"bearer {token}"})
    assert response.status == 200


@pytest.mark.parametrize("authorization", [None, "Basic ZGVtbzpkZW1v", ""])
async def test_no_bearer_token_gets_a_bare_challenge(
    aiohttp_client: ClientFactory, authorization: str | None
) -> None:
    standin = await start_standin(aiohttp_client)
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await standin.client.get(WORKSPACES, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await response.read() == b""


async def test_an_unknown_token_is_an_invalid_token(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.client.get(WORKSPACES, headers={"Authorization": "Bearer made-up"})
    assert response.status == 401
    challenge_header = response.headers["WWW-Authenticate"]
    assert challenge_header.startswith('Bearer error="invalid_token"')
    assert "not valid" in challenge_header


async def test_an_empty_bearer_token_is_an_invalid_token(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.client.get(WORKSPACES, headers={"Authorization": "Bearer "})
    assert response.status == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_a_token_expires_after_its_lifetime(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(token_lifetime_seconds=60))
    headers = {"Authorization": f"Bearer {await standin.token()}"}
    standin.clock.advance(59.9)
    assert (await standin.client.get(WORKSPACES, headers=headers)).status == 200
    standin.clock.advance(0.1)
    response = await standin.client.get(WORKSPACES, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="The access token expired"'
    )


async def test_revoked_tokens_stop_working_and_new_ones_work(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    old = {"Authorization": f"Bearer {await standin.token()}"}
    revoked = await standin.client.post("/_standin/revoke-tokens")
    assert await revoked.json() == {"revoked": 1}
    response = await standin.client.get(WORKSPACES, headers=old)
    assert response.status == 401
    assert "revoked" in response.headers["WWW-Authenticate"]
    fresh = {"Authorization": f"Bearer {await standin.token()}"}
    assert (await standin.client.get(WORKSPACES, headers=fresh)).status == 200


async def test_unknown_api_paths_need_a_token_then_answer_a_404_problem(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    assert (await standin.client.get(API + "/nothing/here")).status == 401
    response = await standin.api("GET", "/nothing/here")
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    assert_problem(await response.json(), 404)


@pytest.mark.parametrize("path", ["/api/_standin/faults", API + "/_standin/faults", "/api"])
async def test_admin_paths_are_never_reachable_under_api(
    aiohttp_client: ClientFactory, path: str
) -> None:
    standin = await start_standin(aiohttp_client)
    token = await standin.token()
    response = await standin.client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 404


async def test_admin_paths_need_no_token(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    assert (await standin.client.get("/_standin/faults")).status == 200


async def test_a_wrong_method_on_an_api_path_is_a_405_problem(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.api("DELETE", "/sdworkspace/CurrentWorkspaces")
    assert response.status == 405
    assert "GET" in response.headers["Allow"]
    assert_problem(await response.json(), 405)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("Bearer abc", "abc"),
        ("BEARER  abc ", "abc"),
        ("Bearer", ""),
        ("Basic abc", None),
        ("", None),
    ],
)
def test_bearer_token_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        (None, "Bearer"),
        (TokenVerdict.UNKNOWN, 'error="invalid_token"'),
        (TokenVerdict.EXPIRED, "expired"),
        (TokenVerdict.REVOKED, "revoked"),
    ],
)
def test_challenge_values(verdict: TokenVerdict | None, expected: str) -> None:
    assert expected in challenge(verdict)


def test_the_token_store_never_shows_tokens() -> None:
    store = TokenStore(lifetime_seconds=10)
    token = store.issue(now=0.0, organization="demo")
    assert token not in repr(store)
    assert store.verdict(token, 9.99) is TokenVerdict.VALID
    assert store.verdict(token, 10.0) is TokenVerdict.EXPIRED
    assert store.verdict("other", 0.0) is TokenVerdict.UNKNOWN
    assert store.revoke_all() == 1
    assert store.verdict(token, 0.0) is TokenVerdict.REVOKED


def test_a_token_knows_its_organization_only_while_it_is_valid() -> None:
    store = TokenStore(lifetime_seconds=10)
    acme, globex = store.issue(0.0, "acme"), store.issue(0.0, "globex")
    assert store.check(acme, 1.0) == (TokenVerdict.VALID, "acme")
    assert store.check(globex, 1.0) == (TokenVerdict.VALID, "globex")
    assert store.check(acme, 10.0) == (TokenVerdict.EXPIRED, None)
    assert store.check("other", 1.0) == (TokenVerdict.UNKNOWN, None)
    store.revoke_all()
    assert store.check(globex, 1.0) == (TokenVerdict.REVOKED, None)


def test_long_expired_and_revoked_tokens_are_forgotten() -> None:
    store = TokenStore(lifetime_seconds=10)
    revoked = store.issue(now=0.0, organization="demo")
    store.revoke_all()
    expired = store.issue(now=5.0, organization="demo")
    store.issue(
        now=20.1, organization="demo"
    )  # 20.1 - 10 > 10: the revoked token's lifetime ended over a lifetime ago
    assert store.verdict(revoked, 20.1) is TokenVerdict.UNKNOWN
    assert store.verdict(expired, 20.1) is TokenVerdict.EXPIRED
    store.issue(now=25.1, organization="demo")
    assert store.verdict(expired, 25.1) is TokenVerdict.UNKNOWN
