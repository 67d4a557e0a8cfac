"""The demo's set-up: the banner names the stand-in's own URL and the admin commands for it,
and the proxy's advice on a token failure fits the demo. (The demo as a real process is in
test_end_to_end.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy import demo
from proxy.app import create_app
from proxy.config import ConfigError
from proxy.problems import CHECK_ADVICE
from proxy.standin import StandinSettings

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def prepared() -> Iterator[demo.Demo]:
    prepared = demo.prepare("127.0.0.1:0")
    yield prepared
    prepared.standin_socket.close()


def test_the_banner_gives_the_stand_in_s_own_url_for_its_fault_switches(
    prepared: demo.Demo,
) -> None:
    standin = prepared.standin_url
    lines = demo.banner(prepared).splitlines()

    assert lines[0].startswith(f"SmartDocumentor stand-in: {standin} ")
    assert f"  curl -s {standin}/_standin/faults    # show them" in lines
    assert f"  curl -s -X DELETE {standin}/_standin/faults    # all off" in lines
    assert "8081" not in standin  # not the standin command's port: a free one


def test_a_token_failure_in_the_demo_advises_resetting_the_stand_in_not_running_check(
    prepared: demo.Demo,
) -> None:
    advice = prepared.config.token_failure_advice

    assert advice is not None
    assert advice.endswith(f": curl -s -X DELETE {prepared.standin_url}/_standin/faults")
    assert CHECK_ADVICE not in advice


def test_the_demo_may_listen_beyond_loopback_as_in_a_container() -> None:
    # Its credentials are the stand-in's own: nobody's identity is behind the open door.
    prepared = demo.prepare("0.0.0.0:8080")
    prepared.standin_socket.close()

    assert not prepared.config.listen.is_loopback


def test_a_bad_listen_address_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="--listen"):
        demo.prepare("nowhere")


def test_the_readme_shows_the_banner_as_the_demo_prints_it() -> None:
    prepared = demo.prepare(demo.DEFAULT_LISTEN)
    try:
        port = prepared.standin_url.rpartition(":")[2]
        printed = demo.banner(prepared).replace(f":{port}", ":41785")
    finally:
        prepared.standin_socket.close()

    assert f"$ smartdoc-proxy demo\n{printed}\n```" in README.read_text(encoding="utf-8")


async def test_the_demo_s_token_failures_carry_its_advice_and_keep_it_while_backing_off(
    aiohttp_client,  # type: ignore[no-untyped-def]
) -> None:
    # The demo's own application, in process, its stand-in failing token requests from the start.
    prepared = demo.prepare("127.0.0.1:0", StandinSettings(fail_token_requests=100))
    client = await aiohttp_client(demo.with_standin(create_app(prepared.config), prepared))
    reset = f"curl -s -X DELETE {prepared.standin_url}/_standin/faults"

    for path in ("/api/v1.0/external/tenant/availableroles", "/_proxy/readyz", "/api/again"):
        response = await client.get(path)  # the later ones answered from the negative cache
        problem = await response.json()
        assert response.status in (502, 503), path
        assert problem["detail"].startswith("the token endpoint answered 400 (invalid_client). ")
        assert problem["detail"].endswith(reset), path
