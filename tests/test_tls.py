"""``--upstream-ca-file``: a CA bundle trusted, besides the system's, for the upstream and the
token endpoint; checked at start-up; refused certificates without it.

The HTTPS fakes present a certificate from a CA made for the test (trustme), which no system
trusts.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from aiohttp.test_utils import TestClient

from proxy import tls
from proxy.app import create_app
from proxy.config import ConfigError, load_config
from tests.fakes import (
    CLIENT_ID,
    SECRET,
    FakeTokenEndpoint,
    FakeUpstream,
    token_app,
    upstream_app,
)
from tests.test_cli import base_env, run_cli

API_PATH = "/api/v1.0/external/sdtask/status"
OPTION_NAMES = "--upstream-ca-file / SMARTDOC_UPSTREAM_CA_FILE"


def load(**flags: str) -> object:
    return load_config({"client_id": CLIENT_ID} | flags, {"SMARTDOC_CLIENT_SECRET": SECRET})


def test_the_ca_file_is_kept_as_an_absolute_path(
    ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ca_file.parent)

    config = load_config(
        {"client_id": CLIENT_ID},
        {"SMARTDOC_CLIENT_SECRET": SECRET, "SMARTDOC_UPSTREAM_CA_FILE": ca_file.name},
    )

    assert config.upstream_ca_file == ca_file
    assert config.upstream_ca_file.is_absolute()


def test_no_ca_file_by_default() -> None:
    config = load_config({"client_id": CLIENT_ID}, {"SMARTDOC_CLIENT_SECRET": SECRET})

    assert config.upstream_ca_file is None


@pytest.mark.parametrize(
    ("name", "why"),
    [("missing.pem", "No such file or directory"), (".", "not a regular file")],
)
def test_a_ca_file_that_cannot_be_read_is_refused_naming_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, why: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load(upstream_ca_file=name)

    assert str(caught.value) == (
        f"{OPTION_NAMES}: {(tmp_path / name).absolute()} is not a readable file: {why}"
    )


def test_a_ca_file_without_a_certificate_stops_the_proxy_before_it_listens(
    tmp_path: Path,
) -> None:
    not_pem = tmp_path / "not-a-ca.pem"
    not_pem.write_text("this is no certificate\n", encoding="utf-8")
    config = load_config(
        {"client_id": CLIENT_ID, "upstream_ca_file": str(not_pem)},
        {"SMARTDOC_CLIENT_SECRET": SECRET},
    )

    with pytest.raises(ConfigError, match=f"^{OPTION_NAMES}: {not_pem} holds no PEM CA"):
        create_app(config)


async def test_the_command_line_refuses_it_in_one_line(tmp_path: Path) -> None:
    not_pem = tmp_path / "not-a-ca.pem"
    not_pem.write_text("this is no certificate\n", encoding="utf-8")

    status, _, err = await run_cli(
        "run", "--client-id", CLIENT_ID, "--upstream-ca-file", str(not_pem),
        env=base_env(SMARTDOC_CLIENT_SECRET=SECRET),
    )  # fmt: skip

    assert status == 2
    assert err.startswith(f"smartdoc-proxy: {OPTION_NAMES}: {not_pem} holds no PEM CA")
    assert err.count("\n") == 1


def test_the_ca_file_is_added_to_the_system_trust_store_not_put_in_its_place(
    ca: trustme.CA, ca_file: Path
) -> None:
    system = tls.client_context(None)
    with_ca = tls.client_context(ca_file)

    assert with_ca.cert_store_stats()["x509_ca"] == system.cert_store_stats()["x509_ca"] + 1
    assert with_ca.verify_mode is ssl.CERT_REQUIRED
    assert with_ca.check_hostname


async def start(  # type: ignore[no-untyped-def]
    aiohttp_server,
    aiohttp_client,
    endpoint: FakeTokenEndpoint,
    upstream: FakeUpstream,
    *,
    https_token: ssl.SSLContext | None,
    https_upstream: ssl.SSLContext | None,
    **flags: str,
) -> TestClient[object, object]:
    token_server = await aiohttp_server(token_app(endpoint), ssl=https_token)
    upstream_server = await aiohttp_server(upstream_app(upstream), ssl=https_upstream)
    config = load_config(
        {
            "upstream": str(upstream_server.make_url("/")),
            "token_url": str(token_server.make_url("/connect/token")),
            "client_id": CLIENT_ID,
        }
        | flags,
        {"SMARTDOC_CLIENT_SECRET": SECRET},
    )
    client: TestClient[object, object] = await aiohttp_client(create_app(config))
    return client


async def test_an_https_token_endpoint_is_trusted_with_the_ca_file(  # type: ignore[no-untyped-def]
    aiohttp_server, aiohttp_client, endpoint, upstream, server_tls, ca_file
) -> None:
    client = await start(
        aiohttp_server, aiohttp_client, endpoint, upstream,
        https_token=server_tls, https_upstream=None, upstream_ca_file=str(ca_file),
    )  # fmt: skip

    response = await client.get(API_PATH)

    assert response.status == 200
    assert upstream.tokens_seen == ["token-1"]


async def test_an_https_token_endpoint_is_refused_without_it(  # type: ignore[no-untyped-def]
    aiohttp_server, aiohttp_client, endpoint, upstream, server_tls
) -> None:
    client = await start(
        aiohttp_server, aiohttp_client, endpoint, upstream,
        https_token=server_tls, https_upstream=None,
    )  # fmt: skip

    response = await client.get(API_PATH)

    assert response.status == 503
    assert endpoint.requests == []
    assert upstream.received == []


async def test_an_https_upstream_is_trusted_with_the_ca_file(  # type: ignore[no-untyped-def]
    aiohttp_server, aiohttp_client, endpoint, upstream, server_tls, ca_file
) -> None:
    client = await start(
        aiohttp_server, aiohttp_client, endpoint, upstream,
        https_token=None, https_upstream=server_tls, upstream_ca_file=str(ca_file),
    )  # fmt: skip

    response = await client.get(API_PATH)

    assert response.status == 200
    assert [r.raw_path for r in upstream.received] == [API_PATH]


async def test_an_https_upstream_is_refused_without_it(  # type: ignore[no-untyped-def]
    aiohttp_server, aiohttp_client, endpoint, upstream, server_tls
) -> None:
    client = await start(
        aiohttp_server, aiohttp_client, endpoint, upstream,
        https_token=None, https_upstream=server_tls,
    )  # fmt: skip

    response = await client.get(API_PATH)

    assert response.status == 502
    body = await response.json()
    # In words, with the verification error: never a Python class name.
    assert body["detail"].startswith("the upstream failed TLS verification: ")
    assert "unable to get local issuer certificate" in body["detail"]
    assert upstream.received == []
