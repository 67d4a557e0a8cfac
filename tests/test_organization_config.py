"""Several organizations in the configuration: ``[organizations.NAME]`` tables, what each may
hold, what they may not be combined with, and the single-organization settings as one
organization named ``default``."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from yarl import URL

from proxy.cli import main
from proxy.config import Config, ConfigError, Listen, Organization, load_config
from proxy.organization_settings import first_duplicate, first_per_organization
from tests.fakes import CLIENT_ID, SECRET


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder with two secret files and a keys file, as the tables below name them."""
    for name in ("acme-secret", "globex-secret"):
        (tmp_path / name).write_text(SECRET, encoding="utf-8")
    (tmp_path / "acme-keys").write_text("billing acme-key-0123456789\n", encoding="utf-8")
    return tmp_path


def two_organizations(folder: Path, extra: str = "") -> str:
    return f"""
scope = "SharedScope"
{extra}
[organizations.acme]
client_id = "acme-client"
client_secret_file = "{folder}/acme-secret"
listen = "127.0.0.1:8181"
inbound_keys_file = "{folder}/acme-keys"

[organizations.globex]
client_id = "globex-client"
client_secret_file = "{folder}/globex-secret"
scope = "GlobexScope"
client_auth = "basic"
token_url = "https://login.globex.example/connect/token"
secret_expires = "2027-06-30"
"""


def load_toml(
    folder: Path,
    text: str,
    flags: dict[str, str | None] | None = None,
    env: dict[str, str] | None = None,
) -> Config:
    path = folder / "proxy.toml"
    path.write_text(text, encoding="utf-8")
    return load_config({"config": str(path)} | (flags or {}), env or {})


def refused(
    folder: Path,
    text: str,
    flags: dict[str, str | None] | None = None,
    env: dict[str, str] | None = None,
) -> str:
    with pytest.raises(ConfigError) as caught:
        load_toml(folder, text, flags, env)
    message = str(caught.value)
    assert "\n" not in message
    assert SECRET not in message
    return message


def test_each_table_is_an_organization_sharing_every_other_setting(files: Path) -> None:
    config = load_toml(files, two_organizations(files))
    assert not config.single_organization
    acme, globex = config.organizations

    assert acme == Organization(
        name="acme",
        client_id="acme-client",
        client_secret=None,
        client_secret_file=files / "acme-secret",
        scope="SharedScope",
        client_auth="post",
        token_url=URL("https://cloud.smartdocumentor.net/connect/token"),
        secret_expires=None,
        listen=Listen("127.0.0.1", 8181),
        inbound_keys_file=files / "acme-keys",
    )
    assert (globex.scope, globex.client_auth, globex.listen) == ("GlobexScope", "basic", None)
    assert globex.token_url == URL("https://login.globex.example/connect/token")
    assert globex.secret_expires == date(2027, 6, 30)
    assert config.organization("globex") is globex


def test_the_single_organization_settings_are_one_organization_named_default() -> None:
    config = load_config(
        {"client_id": CLIENT_ID, "scope": "S", "secret_expires": "2027-01-02"},
        {"SMARTDOC_CLIENT_SECRET": SECRET},
    )

    (only,) = config.organizations
    assert config.single_organization
    assert (only.name, only.client_id, only.client_secret) == ("default", CLIENT_ID, SECRET)
    assert (only.scope, only.token_url, only.listen) == ("S", config.token_url, None)
    assert only.secret_expires == date(2027, 1, 2)
    assert SECRET not in repr(config)


def test_organizations_given_in_code_may_carry_the_secret_itself_which_repr_hides() -> None:
    config = load_config(
        {"upstream": "http://127.0.0.1:9"},
        {},
        organizations={
            "org1": {"client_id": "org1-client", "client_secret": SECRET, "listen": "[::1]:0"},
            "org2": {"client_id": "org2-client", "client_secret": SECRET},
        },
    )

    assert [o.client_secret for o in config.organizations] == [SECRET, SECRET]
    assert config.organizations[0].listen == Listen("::1", 0)
    assert SECRET not in repr(config)


REFUSED = [
    pytest.param("[organizations]\n", "must hold one table per organization", id="empty"),
    pytest.param('organizations = "acme"\n', "must hold one table", id="not-a-table"),
    pytest.param('[organizations]\nacme = "x"\n', "[organizations.acme] must be a table",
                 id="organization-not-a-table"),
    pytest.param('[organizations.Acme]\nclient_id = "a"\n', "must match [a-z0-9][a-z0-9_-]*",
                 id="name-with-capitals"),
    pytest.param('[organizations.acme]\nclient_id = "a"\n',
                 "[organizations.acme] client_secret_file is required", id="no-secret"),
    pytest.param('[organizations.acme]\nclient_secret_file = "{d}/acme-secret"\n',
                 "[organizations.acme] client_id is required", id="no-client-id"),
    pytest.param('[organizations.acme]\nclient_id = " "\nclient_secret_file = "{d}/acme-secret"\n',
                 "[organizations.acme] client_id is required", id="blank-client-id"),
    pytest.param(f'[organizations.acme]\nclient_id = "a"\nclient_secret = "{SECRET}"\n',
                 "client_secret is not read from the config file", id="secret-in-the-file"),
    pytest.param('[organizations.acme]\nclient_id = "a"\nclient_secret_file = "{d}/nope"\n',
                 "[organizations.acme] client_secret_file: ", id="missing-secret-file"),
    pytest.param('[organizations.acme]\nclient_id = "a"\nlisten = 8081\n',
                 "[organizations.acme] listen must be a string", id="number-value"),
    pytest.param('[organizations.acme]\nclient_id = "a"\nupstream = "https://x"\n',
                 "unknown setting 'upstream'", id="shared-setting-in-a-table"),
    pytest.param('[organizations.acme]\nclient_id = "a"\nclient_secret_file = "{d}/acme-secret"\n'
                 'listen = "8081"\n', "[organizations.acme] listen: '8081' is not HOST:PORT",
                 id="bad-listen"),
    pytest.param('[organizations.acme]\nclient_id = "a"\nclient_secret_file = "{d}/acme-secret"\n'
                 'token_url = "ftp://x/token"\n', "[organizations.acme] token_url: ",
                 id="bad-token-url"),
    pytest.param('[organizations.acme]\nclient_id = "a"\nclient_secret_file = "{d}/acme-secret"\n'
                 'token_url = "http://login.example/token"\n',
                 "[organizations.acme] token_url: http://login.example/token is plain http://",
                 id="cleartext-token-url"),
    pytest.param('[organizations.acme]\nclient_id = "a"\nclient_secret_file = "{d}/acme-secret"\n'
                 'client_auth = "digest"\n', "[organizations.acme] client_auth: 'digest'",
                 id="bad-client-auth"),
    pytest.param('[organizations.acme]\nclient_id = "a"\nclient_secret_file = "{d}/acme-secret"\n'
                 'scope = " "\n', "[organizations.acme] scope: must not be blank",
                 id="blank-scope"),
    pytest.param('[organizations.acme]\nclient_id = "a"\nclient_secret_file = "{d}/acme-secret"\n'
                 'secret_expires = "soon"\n', "[organizations.acme] secret_expires: is not a date",
                 id="bad-expiry-date"),
    pytest.param('[organizations.acme]\nclient_id = "a"\nclient_secret_file = "{d}/acme-secret"\n'
                 'listen = "0.0.0.0:8181"\n', "[organizations.acme] listen: 0.0.0.0:8181 is beyond "
                 "loopback", id="open-door-of-an-organization"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "problem"), REFUSED)
def test_a_bad_organization_table_is_one_line_naming_the_table(
    files: Path, text: str, problem: str
) -> None:
    assert problem in refused(files, text.replace("{d}", str(files)))


@pytest.mark.parametrize(
    ("flags", "env", "text", "named"),
    [
        ({"client_id": "x"}, {}, "", "--client-id / SMARTDOC_CLIENT_ID: not together with"),
        ({}, {"SMARTDOC_CLIENT_SECRET": SECRET}, "", "SMARTDOC_CLIENT_SECRET: not together"),
        ({}, {}, 'client_id = "x"\n', "--client-id / SMARTDOC_CLIENT_ID: not together"),
        ({}, {}, 'client_secret_file = "{d}/acme-secret"\n', "--client-secret-file / "),
        ({}, {}, 'inbound_keys_file = "{d}/acme-keys"\n', "--inbound-keys-file / "),
        ({"secret_expires": "2027-01-01"}, {}, "", "--secret-expires / "),
    ],
)
def test_top_level_credentials_together_with_tables_are_refused(
    files: Path, flags: dict[str, str | None], env: dict[str, str], text: str, named: str
) -> None:
    toml = two_organizations(files, text.replace("{d}", str(files)))

    message = refused(files, toml, flags=flags, env=env)

    assert message.startswith(named)
    assert "organizations" in message


@pytest.mark.parametrize(
    ("listen", "metrics_listen", "taken_by"),
    [
        ("127.0.0.1:8181", None, "[organizations.acme] listen"),  # globex takes acme's
        ("127.0.0.1:8080", None, "--listen / SMARTDOC_PROXY_LISTEN"),
        ("127.0.0.1:9090", "127.0.0.1:9090", "--metrics-listen / SMARTDOC_PROXY_METRICS_LISTEN"),
    ],
)
def test_two_organizations_with_one_listen_address_are_refused(
    files: Path, listen: str, metrics_listen: str | None, taken_by: str
) -> None:
    toml = two_organizations(files).replace(
        'scope = "GlobexScope"', f'scope = "GlobexScope"\nlisten = "{listen}"'
    )
    flags: dict[str, str | None] = {"metrics_listen": metrics_listen}

    message = refused(files, toml, flags=flags)

    assert message.startswith(f"[organizations.globex] listen: {listen} is the address of ")
    assert taken_by in message


def test_port_zero_is_no_clash_and_the_shared_address_is_never_an_open_door(files: Path) -> None:
    toml = two_organizations(files).replace("127.0.0.1:8181", "127.0.0.1:0")
    toml = toml.replace('scope = "GlobexScope"', 'scope = "G"\nlisten = "127.0.0.1:0"')

    # With several organizations, the shared address always wants a key to choose one.
    config = load_toml(files, toml, flags={"listen": "0.0.0.0:8080"})

    assert [o.listen for o in config.organizations] == [Listen("127.0.0.1", 0)] * 2


@pytest.mark.parametrize(
    ("extra", "flags"),
    [
        ('inbound_keys_file = "{d}/acme-keys"\n', {}),
        ("", {"allow": "10.0.0.0/8"}),
        ("", {"insecure_open": "true"}),
    ],
)
def test_an_organization_may_listen_beyond_loopback_with_keys_or_an_allow_list(
    files: Path, extra: str, flags: dict[str, str | None]
) -> None:
    toml = (
        f'[organizations.acme]\nclient_id = "a"\nclient_secret_file = "{files}/acme-secret"\n'
        f'listen = "0.0.0.0:8181"\n{extra.replace("{d}", str(files))}'
    )
    config = load_toml(files, toml, flags=flags)
    assert config.organizations[0].listen == Listen("0.0.0.0", 8181)  # noqa: S104


@pytest.mark.parametrize(
    ("given", "first"),
    [
        ([], None),
        (["scope", "listen", "token_url"], None),
        (["scope", "secret_expires", "client_id"], "client_id"),
        (["inbound_keys_file"], "inbound_keys_file"),
        (["client_secret"], "client_secret"),
    ],
)
def test_first_per_organization(given: list[str], first: str | None) -> None:
    assert first_per_organization(given) == first


@pytest.mark.parametrize(
    ("pairs", "clash"),
    [
        ([], None),
        ([("a", 1), ("b", 2)], None),
        ([("a", 1), ("b", 2), ("c", 1)], ("a", "c", 1)),
        ([("a", 1), ("b", 1), ("c", 1)], ("a", "b", 1)),
    ],
)
def test_first_duplicate(pairs: list[tuple[str, int]], clash: tuple[str, str, int] | None) -> None:
    assert first_duplicate(pairs) == clash


def test_top_level_credentials_next_to_tables_stop_the_command_with_one_line_and_status_2(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = files / "proxy.toml"
    path.write_text(two_organizations(files), encoding="utf-8")

    status = main(["run", "--config", str(path)], env={"SMARTDOC_CLIENT_SECRET": SECRET})

    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert err.startswith("smartdoc-proxy: SMARTDOC_CLIENT_SECRET: not together with")
    assert SECRET not in err


def test_an_organizations_files_are_taken_from_the_toml_files_folder(
    files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the settings above the tables are: not from wherever the proxy is started.
    text = two_organizations(files).replace(f"{files}/", "")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_toml(files, text)
    acme, globex = config.organizations
    assert acme.client_secret_file == files / "acme-secret"
    assert acme.inbound_keys_file == files / "acme-keys"
    assert globex.client_secret_file == files / "globex-secret"
