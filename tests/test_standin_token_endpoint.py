"""`POST /connect/token`: success with form and Basic authentication, and every OAuth error."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from proxy.standin import StandinSettings
from proxy.standin.oauth import (
    ClientCredentials,
    OAuthError,
    authenticate,
    check_grant,
    client_credentials,
)
from proxy.standin.settings import OrganizationSettings
from tests.standin_helpers import TOKEN_FORM, ClientFactory, basic, start_standin


def form(**changes: str | None) -> dict[str, str]:
    """The valid token form with some fields changed (None removes a field)."""
    merged: dict[str, str | None] = {**TOKEN_FORM, **changes}
    return {key: value for key, value in merged.items() if value is not None}


def assert_no_store(headers: Any) -> None:
    assert headers["Cache-Control"] == "no-store"
    assert headers["Pragma"] == "no-cache"


async def test_form_credentials_get_a_bearer_token(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.client.post("/connect/token", data=TOKEN_FORM)
    assert response.status == 200
    assert response.content_type == "application/json"
    assert_no_store(response.headers)
    body = await response.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "scope"}
    assert body["expires_in"] == 3600
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "WebAPI"
    assert len(body["access_token"]) >= 40


async def test_basic_credentials_get_a_bearer_token(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.client.post(
        "/connect/token",
        data=form(client_id=None, client_secret=None),
        headers={"Authorization": basic("demo-client", "demo-secret")},
    )
    assert response.status == 200
    assert (await response.json())["token_type"] == "Bearer"


async def test_each_request_gets_a_different_token_with_the_configured_lifetime(
    aiohttp_client: ClientFactory,
) -> None:
    settings = StandinSettings(client_id="acme", client_secret="pw", token_lifetime_seconds=90)
    standin = await start_standin(aiohttp_client, settings)
    data = form(client_id="acme", client_secret="pw")
    first = await (await standin.client.post("/connect/token", data=data)).json()
    second = await (await standin.client.post("/connect/token", data=data)).json()
    assert first["access_token"] != second["access_token"]
    assert first["expires_in"] == 90


async def test_scope_may_be_omitted(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.client.post("/connect/token", data=form(scope=None))
    assert response.status == 200


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (form(client_secret="wrong"), "invalid_client"),
        (form(client_id="someone-else"), "invalid_client"),
        (form(client_secret=None), "invalid_client"),
        (form(client_id=None), "invalid_request"),
        (form(grant_type=None), "unsupported_grant_type"),
        (form(grant_type="password"), "unsupported_grant_type"),
        (form(scope="WebAPI offline_access"), "invalid_scope"),
        (form(scope="webapi"), "invalid_scope"),
    ],
)
async def test_form_errors_answer_400_with_the_oauth_code(
    aiohttp_client: ClientFactory, data: dict[str, str], error: str
) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.client.post("/connect/token", data=data)
    assert response.status == 400
    assert await response.json() == {"error": error}
    assert_no_store(response.headers)
    assert "WWW-Authenticate" not in response.headers


async def test_a_json_body_is_an_invalid_request(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.client.post("/connect/token", json=TOKEN_FORM)
    assert response.status == 400
    assert await response.json() == {"error": "invalid_request"}


async def test_a_repeated_parameter_is_an_invalid_request(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    body = "grant_type=client_credentials&grant_type=client_credentials"
    body += "&client_id=demo-client&client_secret=demo-secret"
    response = await standin.client.post(
        "/connect/token",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 400
    assert await response.json() == {"error": "invalid_request"}


@pytest.mark.parametrize(
    "authorization",
    [
        basic("demo-client", "wrong"),
        basic("nobody", "demo-secret"),
        "Basic not-base64!!",
        "Basic " + "ZGVtby1jbGllbnQ=",  # "demo-client" with no colon
    ],
)
async def test_failed_basic_authentication_answers_400_invalid_client_without_a_challenge(
    aiohttp_client: ClientFactory, authorization: str
) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.client.post(
        "/connect/token",
        data=form(client_id=None, client_secret=None),
        headers={"Authorization": authorization},
    )
    assert response.status == 400
    assert "WWW-Authenticate" not in response.headers
    assert await response.json() == {"error": "invalid_client"}
    assert_no_store(response.headers)


async def test_basic_and_a_form_secret_together_are_an_invalid_request(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.client.post(
        "/connect/token",
        data=form(client_id=None),
        headers={"Authorization": basic("demo-client", "demo-secret")},
    )
    assert response.status == 400
    assert await response.json() == {"error": "invalid_request"}


async def test_basic_credentials_are_url_decoded(aiohttp_client: ClientFactory) -> None:
    settings = StandinSettings(client_id="id:with colon", client_secret="p@ss word")
    standin = await start_standin(aiohttp_client, settings)
    response = await standin.client.post(
        "/connect/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic("id%3Awith+colon", "p%40ss+word")},
    )
    assert response.status == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_other_methods_than_post_are_invalid_requests(
    aiohttp_client: ClientFactory, method: str
) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.client.request(method, "/connect/token", data=TOKEN_FORM)
    assert response.status == 400
    assert response.content_type == "application/json"
    assert await response.json() == {"error": "invalid_request"}
    assert_no_store(response.headers)


async def test_a_request_that_is_not_a_post_uses_up_no_token_fault(
    aiohttp_client: ClientFactory,
) -> None:
    settings = StandinSettings(fail_token_requests=1, fail_token_mode="500")
    standin = await start_standin(aiohttp_client, settings)
    assert (await standin.client.get("/connect/token")).status == 400
    assert (await standin.client.post("/connect/token", data=TOKEN_FORM)).status == 500
    assert (await standin.client.post("/connect/token", data=TOKEN_FORM)).status == 200


@pytest.mark.parametrize(
    ("params", "authorization", "expected"),
    [
        ({"client_id": "a", "client_secret": "b"}, None, ("a", "b")),
        ({"client_id": "a"}, None, ("a", None)),
        ({}, basic("a", "b"), ("a", "b")),
        ({"client_id": "a"}, basic("a", "b"), ("a", "b")),
        ({"client_id": "a", "client_secret": "b"}, "Bearer xyz", ("a", "b")),
    ],
)
def test_client_credentials_come_from_basic_or_the_form(
    params: dict[str, str], authorization: str | None, expected: tuple[str, str | None]
) -> None:
    credentials = client_credentials(params, authorization)
    assert (credentials.client_id, credentials.client_secret) == expected
    assert "b" not in repr(credentials)


@pytest.mark.parametrize(
    ("params", "authorization", "code"),
    [
        ({}, None, "invalid_request"),
        ({"client_id": "other"}, basic("a", "b"), "invalid_request"),
        ({}, "Basic %%%", "invalid_client"),
    ],
)
def test_client_credentials_failures(
    params: dict[str, str], authorization: str | None, code: str
) -> None:
    with pytest.raises(OAuthError) as caught:
        client_credentials(params, authorization)
    assert caught.value.code == code


ORGS = (
    OrganizationSettings("a", "a-client", "a-secret"),
    OrganizationSettings("b", "b-client", "b-secret"),
)


@pytest.mark.parametrize(
    ("client_id", "secret", "organization"),
    [
        ("a-client", "a-secret", "a"),
        ("b-client", "b-secret", "b"),
        ("b-client", "a-secret", None),  # another organization's secret
        ("b-client", "b-secret ", None),
        ("B-CLIENT", "b-secret", None),  # client ids are compared exactly
        ("c-client", "b-secret", None),
        ("b-client", None, None),
        ("b-client", "", None),
    ],
)
def test_authenticate_finds_the_organization_of_a_matching_pair(
    client_id: str, secret: str | None, organization: str | None
) -> None:
    credentials = ClientCredentials(client_id, secret)
    if organization is None:
        with pytest.raises(OAuthError, match=r"^invalid_client$"):
            authenticate(credentials, ORGS)
    else:
        assert authenticate(credentials, ORGS).name == organization


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"grant_type": "client_credentials"}, None),
        ({"grant_type": "client_credentials", "scope": "WebAPI"}, None),
        ({}, "unsupported_grant_type"),
        ({"grant_type": ""}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "scope": ""}, "invalid_scope"),
    ],
)
def test_check_grant(params: dict[str, str], code: str | None) -> None:
    if code is None:
        check_grant(params)
        return
    with pytest.raises(OAuthError, match=code):
        check_grant(params)


async def test_secrets_and_tokens_never_reach_the_logs(
    aiohttp_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = StandinSettings(client_secret="top-secret-value")
    standin = await start_standin(aiohttp_client, settings)
    await standin.client.post("/connect/token", data=form(client_secret="typo-secret-value"))
    await standin.client.post(
        "/connect/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic("demo-client", "typo-secret-value")},
    )
    ok = await standin.client.post("/connect/token", data=form(client_secret="top-secret-value"))
    token = (await ok.json())["access_token"]
    await standin.client.get(
        "/api/v1.0/external/tenant/allusers", headers={"Authorization": f"Bearer {token}"}
    )
    assert "token request refused: invalid_client" in caplog.text
    for secret in ("top-secret-value", "typo-secret-value", token):
        assert secret not in caplog.text
