"""Settings, flags and their validation."""

from __future__ import annotations

import argparse
from dataclasses import fields, replace

import pytest

from proxy.standin import (
    StandinSettings,
    StandinSettingsError,
    add_arguments,
    listen_from_args,
    settings_from_args,
)
from proxy.standin.organization_settings import (
    OrganizationError,
    organizations_problem,
    parse_organization,
)
from proxy.standin.settings import (
    OrganizationSettings,
    demo_organizations,
    flag_for,
    parse_listen,
)

DEMO = OrganizationSettings("demo", "demo-client", "demo-secret")


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


def test_without_organizations_there_is_the_one_demo_organization() -> None:
    assert StandinSettings().organizations == (DEMO,)
    own = StandinSettings(client_id="acme", client_secret="hunter2")
    assert own.organizations == (OrganizationSettings("demo", "acme", "hunter2"),)
    assert replace(StandinSettings(), client_id="x").organizations[0].client_id == "x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acme:acme-client:s3cret", OrganizationSettings("acme", "acme-client", "s3cret")),
        ("org-1_b:id:a:b::c", OrganizationSettings("org-1_b", "id", "a:b::c")),
        ("0:id: spaced secret ", OrganizationSettings("0", "id", " spaced secret ")),
    ],
)
def test_an_organization_is_name_client_id_and_everything_after_as_secret(
    text: str, expected: OrganizationSettings
) -> None:
    assert parse_organization(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("s3cret", "expected NAME:CLIENT_ID:CLIENT_SECRET (the value is not shown"),
        ("acme:s3cret", "expected NAME:CLIENT_ID:CLIENT_SECRET (the value is not shown"),
        ("Acme:id:s3cret", "name 'Acme' must match [a-z0-9][a-z0-9_-]*"),
        ("-acme:id:s3cret", "name '-acme' must match"),
        ("a.b:id:s3cret", "name 'a.b' must match"),
        (":id:s3cret", "name must match"),
        ("acme: :s3cret", "organization 'acme': the client id must not be empty"),
        ("acme:id:", "organization 'acme': the client secret must not be empty"),
    ],
)
def test_a_malformed_organization_is_refused_without_its_secret(text: str, message: str) -> None:
    with pytest.raises(OrganizationError) as caught:
        parse_organization(text)
    assert str(caught.value).startswith(message)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("organizations", "problem"),
    [
        ((DEMO,), None),
        ((DEMO, OrganizationSettings("b", "b-client", "x")), None),
        ((DEMO, OrganizationSettings("demo", "b", "x")), "name 'demo' is given to more than one"),
        ((DEMO, OrganizationSettings("b", "demo-client", "x")), "client id 'demo-client' is"),
        ((DEMO, OrganizationSettings("B", "b", "x")), "name 'B' must match"),
        ([DEMO], "must be a tuple of OrganizationSettings"),
        (("demo:demo-client:demo-secret",), "must be a tuple of OrganizationSettings"),
    ],
)
def test_organizations_must_be_unique_by_name_and_client_id(
    organizations: object, problem: str | None
) -> None:
    found = organizations_problem(organizations)
    assert found == problem if problem is None else (found or "").startswith(problem)


def test_the_organization_flag_repeats_and_replaces_the_default() -> None:
    settings = settings_from_args(parse("--organization=a:a-id:x", "--organization", "b:b-id:y:z"))
    assert settings.organizations == (
        OrganizationSettings("a", "a-id", "x"),
        OrganizationSettings("b", "b-id", "y:z"),
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--organization=Bad:id:s3cret"], "--organization: name 'Bad' must match"),
        (["--organization=s3cret"], "--organization: expected NAME:CLIENT_ID:CLIENT_SECRET"),
        (["--organization=a:id:x", "--organization=a:id2:s3cret"], "--organization: name 'a'"),
        (["--organization=a:id:x", "--client-id=other"], "--client-id: not together with"),
        (["--organization=a:id:x", "--client-secret=s3cret"], "--client-secret: not together"),
        (["--organization=demo:demo-client:demo-secret", "--client-id=x"], "--client-id: not"),
    ],
)
def test_a_bad_organization_flag_is_one_line_without_the_secret(
    argv: list[str], message: str
) -> None:
    with pytest.raises(StandinSettingsError) as caught:
        settings_from_args(parse(*argv))
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_credentials_and_organizations_given_directly_must_not_conflict() -> None:
    acme = OrganizationSettings("acme", "acme-client", "acme-secret")
    with pytest.raises(StandinSettingsError, match=r"^--client-id: not together"):
        StandinSettings(client_id="x", organizations=(acme,))


def test_no_organization_secret_reaches_repr() -> None:
    settings = StandinSettings(organizations=(OrganizationSettings("a", "a-id", "s3cret"),))
    assert "s3cret" not in repr(settings)
    assert "a-id" in repr(settings)


def test_demo_organizations_are_numbered_with_distinct_credentials() -> None:
    three = demo_organizations(3)
    assert [o.name for o in three] == ["org1", "org2", "org3"]
    assert [o.client_id for o in three] == ["org1-client", "org2-client", "org3-client"]
    assert len({o.client_secret for o in three}) == 3
    assert StandinSettings(organizations=three).organizations == three
    with pytest.raises(OrganizationError):
        demo_organizations(0)


def test_help_shows_the_organization_format_and_the_default() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    help_text = "".join(parser.format_help().split())  # whatever argparse's line breaks
    for shown in [
        "--organization NAME:CLIENT_ID:CLIENT_SECRET",
        "one organization, 'demo', with --client-id and --client-secret",
    ]:
        assert "".join(shown.split()) in help_text


def test_help_ends_with_what_no_single_flag_says() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    help_text = " ".join(parser.format_help().split())
    assert "Request bodies over 1 MiB are refused with 413." in help_text
    assert "sees only the data of the organization it was issued for" in help_text
    own = argparse.ArgumentParser(epilog="the caller's own")
    add_arguments(own)
    assert own.epilog == "the caller's own"
