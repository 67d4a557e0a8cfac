"""Settings, flags and their validation."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from proxy.standin import (
    StandinSettings,
    StandinSettingsError,
    add_arguments,
    listen_from_args,
    settings_from_args,
)
from proxy.standin.settings import flag_for, parse_listen


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_are_a_usable_demo_configuration() -> None:
    settings = StandinSettings()
    assert settings.client_id == "demo-client"
    assert settings.client_secret == "demo-secret"
    assert settings.token_lifetime_seconds == 3600
    assert settings.webhook_url is None
    assert settings.workspaces == ()
    assert settings.fail_token_requests == 0


def test_repr_never_shows_the_client_secret() -> None:
    settings = StandinSettings(client_secret="s3cr3t-value")
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in str(settings)


def test_repr_never_shows_the_webhook_url_and_its_signature() -> None:
    settings = StandinSettings(webhook_url="https://hooks.example/in?sig=very-secret")
    assert "very-secret" not in repr(settings)
    assert "very-secret" not in str(settings)


def test_no_flags_give_the_default_settings_and_listen_address() -> None:
    ns = parse()
    assert settings_from_args(ns) == StandinSettings()
    assert listen_from_args(ns) == ("127.0.0.1", 8081)


def test_every_settings_field_has_a_flag_with_help() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    help_text = parser.format_help()
    for f in fields(StandinSettings):
        assert flag_for(f.name) in help_text
        assert f.metadata["help"]
    # The demo secret is no secret: the README names it, and so does --help.
    assert "(default demo-secret)" in " ".join(help_text.split())


def test_flags_set_every_kind_of_field() -> None:
    ns = parse(
        "--client-id=acme",
        "--client-secret=hunter2",
        "--token-lifetime-seconds=60",
        "--step-seconds=0.5",
        "--webhook-url=http://127.0.0.1:9000/hook",
        "--workspace=Invoices",
        "--workspace=Meeting transcripts",
        "--fail-token-requests=2",
        "--fail-token-mode=hang",
        "--latency-seconds=0.25",
        "--fail-api-status=429",
        "--listen=localhost:9999",
    )
    settings = settings_from_args(ns)
    assert settings.client_id == "acme"
    assert settings.client_secret == "hunter2"
    assert settings.token_lifetime_seconds == 60
    assert settings.step_seconds == 0.5
    assert settings.webhook_url == "http://127.0.0.1:9000/hook"
    assert settings.workspaces == ("Invoices", "Meeting transcripts")
    assert (settings.fail_token_requests, settings.fail_token_mode) == (2, "hang")
    assert settings.latency_seconds == 0.25
    assert settings.fail_api_status == 429
    assert listen_from_args(ns) == ("localhost", 9999)


def test_an_empty_webhook_flag_means_no_webhook() -> None:
    assert settings_from_args(parse("--webhook-url=")).webhook_url is None


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--token-lifetime-seconds=abc"], "--token-lifetime-seconds"),
        (["--token-lifetime-seconds=0"], "--token-lifetime-seconds"),
        (["--step-seconds=-1"], "--step-seconds"),
        (["--step-seconds=nan"], "--step-seconds"),
        (["--webhook-url=ftp://example.com/x"], "--webhook-url"),
        (["--webhook-url=http://"], "--webhook-url"),
        (["--webhook-timeout-seconds=0"], "--webhook-timeout-seconds"),
        (["--webhook-max-attempts=0"], "--webhook-max-attempts"),
        (["--client-id= "], "--client-id"),
        (["--client-secret="], "--client-secret"),
        (["--workspace=A", "--workspace=a"], "--workspace"),
        (["--workspace= "], "--workspace"),
        (["--fail-token-mode=sometimes"], "--fail-token-mode"),
        (["--fail-token-requests=-1"], "--fail-token-requests"),
        (["--fail-api-status=500"], "--fail-api-status"),
        (["--latency-seconds=301"], "--latency-seconds"),
        (["--fail-api-seconds=-5"], "--fail-api-seconds"),
        (["--retry-after-seconds=1.5"], "--retry-after-seconds"),
    ],
)
def test_a_bad_flag_value_raises_one_line_naming_the_flag(argv: list[str], flag: str) -> None:
    with pytest.raises(StandinSettingsError) as caught:
        settings_from_args(parse(*argv))
    message = str(caught.value)
    assert message.startswith(flag + ":")
    assert "\n" not in message


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(StandinSettingsError, match=r"^--step-seconds:"):
        StandinSettings(step_seconds=-0.1)
    with pytest.raises(StandinSettingsError, match=r"^--token-lifetime-seconds:"):
        StandinSettings(token_lifetime_seconds=True)
    with pytest.raises(StandinSettingsError, match=r"^--workspace: must be a tuple"):
        StandinSettings(workspaces=["A"])  # type: ignore[arg-type]


def test_a_bad_secret_is_reported_without_its_value() -> None:
    with pytest.raises(StandinSettingsError) as caught:
        StandinSettings(client_secret="   ")
    assert str(caught.value) == "--client-secret: must not be empty"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8081", ("127.0.0.1", 8081)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:8443", ("::1", 8443)),
    ],
)
def test_listen_parses_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8081", ":8081", "host:", "host:http", "host:70000"])
def test_a_bad_listen_address_names_the_flag(text: str) -> None:
    with pytest.raises(StandinSettingsError, match=r"^--listen:"):
        parse_listen(text)
