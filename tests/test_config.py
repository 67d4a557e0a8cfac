"""The configuration contract: precedence, defaults, validation, secrecy, and agreement of the
option table with the example TOML file and the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from yarl import URL

from proxy.config import (
    CHECK_OPTIONS,
    CONFIG_FILE,
    DEFAULT_UPSTREAM,
    OPTIONS,
    OPTIONS_BY_NAME,
    Config,
    ConfigError,
    Listen,
    load_config,
)
from proxy.organization_settings import TABLE_KEYS
from tests.fakes import CLIENT_ID, SECRET

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_TOML = ROOT / "config" / "smartdoc-proxy.example.toml"
README = ROOT / "README.md"
SECRET_ENV = {"SMARTDOC_CLIENT_SECRET": SECRET}
# A commented-out setting in the example file: "# name = value".
COMMENTED_SETTING = re.compile(r"^# ([a-z_]+) = (.+)$")


def load(
    flags: dict[str, str | None] | None = None,
    env: dict[str, str] | None = None,
) -> Config:
    """``load_config`` with a client id and secret unless the test gives its own."""
    return load_config({"client_id": CLIENT_ID} | (flags or {}), SECRET_ENV | (env or {}))


def write_toml(tmp_path: Path, text: str, name: str = "proxy.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def config_error(
    flags: dict[str, str | None] | None = None, env: dict[str, str] | None = None
) -> str:
    with pytest.raises(ConfigError) as caught:
        load(flags, env)
    message = str(caught.value)
    assert SECRET not in message
    assert "\n" not in message
    return message


# option, flag value, environment value, TOML value (as TOML source), default, config -> str
PRECEDENCE_VALUES = [
    ("listen", "127.0.0.1:1111", "127.0.0.1:2222", '"127.0.0.1:3333"', "127.0.0.1:8080"),
    (
        "upstream",
        "https://flag.example",
        "https://env.example",
        '"https://toml.example"',
        DEFAULT_UPSTREAM,
    ),
    ("scope", "flag-scope", "env-scope", '"toml-scope"', "WebAPI"),
    ("shutdown_grace_seconds", "1.5", "2.5", "3.5", "10.0"),
    ("replay_limit_bytes", "11", "22", "33", "1048576"),
    ("log_level", "DEBUG", "ERROR", '"WARNING"', "INFO"),
]
# Which sources are set, and which one must win.
LAYERS = [
    pytest.param(("flag", "env", "toml"), "flag", id="flag-beats-env-and-toml"),
    pytest.param(("flag", "toml"), "flag", id="flag-beats-toml"),
    pytest.param(("env", "toml"), "env", id="env-beats-toml"),
    pytest.param(("toml",), "toml", id="toml-beats-default"),
    pytest.param((), "default", id="default-when-unset"),
]


@pytest.mark.parametrize(("layers", "winner"), LAYERS)
@pytest.mark.parametrize(
    ("name", "flag", "env", "toml", "default"),
    PRECEDENCE_VALUES,
    ids=[v[0] for v in PRECEDENCE_VALUES],
)
def test_precedence_is_flag_then_environment_then_toml_then_default(
    tmp_path: Path,
    layers: tuple[str, ...],
    winner: str,
    name: str,
    flag: str,
    env: str,
    toml: str,
    default: str,
) -> None:
    flags: dict[str, str | None] = {"config": write_toml(tmp_path, f"{name} = {toml}\n")}
    environment: dict[str, str] = {}
    if "flag" in layers:
        flags[name] = flag
    if "env" in layers:
        environment[OPTIONS_BY_NAME[name].env] = env
    if "toml" not in layers:
        flags["config"] = None
    expected = {"flag": flag, "env": env, "toml": toml.strip('"'), "default": default}[winner]
    if name == "shutdown_grace_seconds":
        expected = str(float(expected))

    config = load(flags, environment)

    assert str(getattr(config, name)) == expected


def test_an_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, 'scope = "toml-scope"\n')

    config = load({"config": toml}, {"SMARTDOC_SCOPE": ""})

    assert config.scope == "toml-scope"


def test_client_id_follows_the_same_precedence(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, 'client_id = "from-toml"\n')
    env = SECRET_ENV | {"SMARTDOC_PROXY_CONFIG": toml}

    assert load_config({}, env).client_id == "from-toml"
    assert load_config({}, env | {"SMARTDOC_CLIENT_ID": "from-env"}).client_id == "from-env"
    flags = {"client_id": "from-flag"}
    assert load_config(flags, env | {"SMARTDOC_CLIENT_ID": "from-env"}).client_id == "from-flag"


def test_config_file_flag_beats_config_file_environment_variable(tmp_path: Path) -> None:
    from_flag = write_toml(tmp_path, 'scope = "from-flag-file"\n', "flag.toml")
    from_env = write_toml(tmp_path, 'scope = "from-env-file"\n', "env.toml")

    assert load(env={CONFIG_FILE.env: from_env}).scope == "from-env-file"
    assert load({"config": from_flag}, {CONFIG_FILE.env: from_env}).scope == "from-flag-file"


def test_toml_numbers_and_strings_are_both_accepted(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, 'token_timeout_seconds = 2.5\nreplay_limit_bytes = "7"\n')

    config = load({"config": toml})

    assert (config.token_timeout_seconds, config.replay_limit_bytes) == (2.5, 7)


def test_defaults_apply_when_nothing_but_credentials_is_set() -> None:
    config = load()

    assert config.listen == Listen("127.0.0.1", 8080)
    assert config.upstream == URL("https://cloud.smartdocumentor.net")
    assert config.token_url == URL("https://cloud.smartdocumentor.net/connect/token")
    assert config.client_id == CLIENT_ID
    assert (config.client_secret, config.client_secret_file) == (SECRET, None)
    assert config.scope == "WebAPI"
    assert config.client_auth == "post"
    assert config.upstream_connect_timeout_seconds == 10
    assert config.upstream_read_timeout_seconds == 60
    assert config.token_timeout_seconds == 10
    assert config.replay_limit_bytes == 1048576
    assert config.refresh_margin_seconds == 300
    assert config.default_token_lifetime_seconds == 3600
    assert config.shutdown_grace_seconds == 10
    assert config.log_format == "text"
    assert config.log_level == "INFO"


@pytest.mark.parametrize(
    ("upstream", "token_url"),
    [
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/connect/token"),
        ("https://api.example/", "https://api.example/connect/token"),
        ("HTTPS://API.Example:8443", "https://api.example:8443/connect/token"),
    ],
)
def test_token_url_defaults_to_the_upstream_origin_plus_connect_token(
    upstream: str, token_url: str
) -> None:
    assert load({"upstream": upstream}).token_url == URL(token_url)


def test_an_explicit_token_url_is_kept_as_given() -> None:
    config = load({"upstream": "https://a.example", "token_url": "https://b.example/oauth/token"})

    assert config.token_url == URL("https://b.example/oauth/token")


def test_upstream_with_a_trailing_slash_is_reduced_to_its_origin() -> None:
    assert load({"upstream": "https://api.example/"}).upstream == URL("https://api.example")


def test_the_secret_can_come_from_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET, encoding="utf-8")

    config = load_config({"client_id": CLIENT_ID, "client_secret_file": str(secret_file)}, {})

    assert (config.client_secret, config.client_secret_file) == (None, secret_file)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("replay_limit_bytes", "0"),
        ("refresh_margin_seconds", "0"),
        ("shutdown_grace_seconds", "0"),
        ("log_level", "debug"),
        ("client_auth", "BASIC"),
        ("listen", "[::1]:8443"),
        ("listen", "localhost:1"),
        ("listen", "127.0.0.1:65535"),
        ("listen", "127.0.0.1:0"),  # any free port
        ("metrics_listen", "127.0.0.1:0"),
    ],
)
def test_boundary_values_are_accepted(name: str, value: str) -> None:
    load({name: value})


# (flags, environment) that must be refused, and the option the message must name.
INVALID = [
    pytest.param({"listen": "8080"}, {}, "listen", id="listen-without-host"),
    pytest.param({"listen": "localhost"}, {}, "listen", id="listen-without-port"),
    pytest.param({"listen": ":8080"}, {}, "listen", id="listen-empty-host"),
    pytest.param({"listen": "127.0.0.1:http"}, {}, "listen", id="listen-port-not-a-number"),
    pytest.param({"listen": "127.0.0.1:65536"}, {}, "listen", id="listen-port-too-big"),
    pytest.param({"listen": "127.0.0.1:-1"}, {}, "listen", id="listen-port-negative"),
    pytest.param({"listen": " "}, {}, "listen", id="listen-blank"),
    pytest.param({"listen": "::1:8080"}, {}, "listen", id="listen-ipv6-unbracketed"),
    pytest.param({"listen": "::1"}, {}, "listen", id="listen-ipv6-without-port"),
    pytest.param({"upstream": "ftp://api.example"}, {}, "upstream", id="upstream-not-http"),
    pytest.param({"upstream": "api.example"}, {}, "upstream", id="upstream-without-scheme"),
    pytest.param({"upstream": "https://"}, {}, "upstream", id="upstream-without-host"),
    pytest.param({"upstream": "http://[::1"}, {}, "upstream", id="upstream-not-a-url"),
    pytest.param({"upstream": "https://api.example/api"}, {}, "upstream", id="upstream-path"),
    pytest.param({"upstream": "https://api.example/?a=1"}, {}, "upstream", id="upstream-query"),
    pytest.param({"upstream": "https://api.example/#x"}, {}, "upstream", id="upstream-fragment"),
    pytest.param(
        {"upstream": "https://user:pw@api.example"}, {}, "upstream", id="upstream-credentials"
    ),
    pytest.param({"token_url": "ftp://t.example/token"}, {}, "token_url", id="token-url-not-http"),
    pytest.param(
        {"upstream": "ftp://user:hunter2@api.example"}, {}, "upstream", id="ftp-with-password"
    ),
    pytest.param({"token_url": "/connect/token"}, {}, "token_url", id="token-url-relative"),
    pytest.param(
        {"token_url": "https://id:pw@t.example/token"}, {}, "token_url", id="token-url-credentials"
    ),
    pytest.param({"scope": " "}, {}, "scope", id="scope-blank"),
    pytest.param({"client_auth": "digest"}, {}, "client_auth", id="client-auth-bad-choice"),
    pytest.param({"log_format": "xml"}, {}, "log_format", id="log-format-bad-choice"),
    pytest.param({"log_level": "TRACE"}, {}, "log_level", id="log-level-bad-choice"),
    pytest.param(
        {"upstream_connect_timeout_seconds": "ten"},
        {},
        "upstream_connect_timeout_seconds",
        id="connect-timeout-not-a-number",
    ),
    pytest.param(
        {"upstream_read_timeout_seconds": "0"},
        {},
        "upstream_read_timeout_seconds",
        id="read-timeout-zero",
    ),
    pytest.param(
        {"token_timeout_seconds": "-1"}, {}, "token_timeout_seconds", id="token-timeout-negative"
    ),
    pytest.param(
        {"token_timeout_seconds": "nan"}, {}, "token_timeout_seconds", id="token-timeout-nan"
    ),
    pytest.param(
        {"upstream_read_timeout_seconds": "inf"},
        {},
        "upstream_read_timeout_seconds",
        id="read-timeout-infinite",
    ),
    pytest.param(
        {"replay_limit_bytes": "1.5"}, {}, "replay_limit_bytes", id="replay-limit-not-whole"
    ),
    pytest.param(
        {"replay_limit_bytes": "-1"}, {}, "replay_limit_bytes", id="replay-limit-negative"
    ),
    pytest.param(
        {"refresh_margin_seconds": "-0.5"},
        {},
        "refresh_margin_seconds",
        id="refresh-margin-negative",
    ),
    pytest.param(
        {"refresh_margin_seconds": "NaN"}, {}, "refresh_margin_seconds", id="refresh-margin-nan"
    ),
    pytest.param(
        {"default_token_lifetime_seconds": "0"},
        {},
        "default_token_lifetime_seconds",
        id="default-lifetime-zero",
    ),
    pytest.param(
        {"shutdown_grace_seconds": "-1"}, {}, "shutdown_grace_seconds", id="grace-negative"
    ),
    pytest.param(
        {"shutdown_grace_seconds": "soon"}, {}, "shutdown_grace_seconds", id="grace-not-a-number"
    ),
    pytest.param(
        {},
        {"SMARTDOC_SHUTDOWN_GRACE_SECONDS": "nan"},
        "shutdown_grace_seconds",
        id="grace-nan-from-environment",
    ),
    pytest.param({"client_id": None}, {}, "client_id", id="client-id-missing"),
    pytest.param({"client_id": "  "}, {}, "client_id", id="client-id-blank"),
    pytest.param(
        {"client_secret_file": "/nonexistent/smartdoc-secret"},
        {},
        "client_secret_file",
        id="both-secret-sources",
    ),
]


@pytest.mark.parametrize(("flags", "env", "name"), INVALID)
def test_an_invalid_setting_is_refused_with_a_message_naming_the_option(
    flags: dict[str, str | None], env: dict[str, str], name: str
) -> None:
    message = config_error(flags, env)

    option = OPTIONS_BY_NAME[name]
    assert message.startswith(f"{option.flag} / {option.env}: ")
    assert "hunter2" not in message
    assert "pw@" not in message


def test_setting_both_secret_sources_says_to_choose_one(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET, encoding="utf-8")

    message = config_error({"client_secret_file": str(secret_file)})

    assert "--client-secret-file" in message
    assert "either" in message
    assert "SMARTDOC_CLIENT_SECRET" in message


def test_a_missing_secret_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-secret"
    with pytest.raises(ConfigError) as caught:
        load_config({"client_id": CLIENT_ID, "client_secret_file": str(missing)}, {})

    assert str(caught.value).startswith("--client-secret-file / SMARTDOC_CLIENT_SECRET_FILE: ")
    assert str(missing) in str(caught.value)


def test_a_directory_is_not_accepted_as_the_secret_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--client-secret-file"):
        load_config({"client_id": CLIENT_ID, "client_secret_file": str(tmp_path)}, {})


def test_a_missing_secret_is_refused_naming_both_ways_to_set_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"client_id": CLIENT_ID}, {})

    message = str(caught.value)
    assert "--client-secret-file" in message
    assert "SMARTDOC_CLIENT_SECRET" in message


def test_a_missing_client_id_says_it_is_required_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({}, SECRET_ENV)

    assert caught.value.messages == (
        "--client-id / SMARTDOC_CLIENT_ID: is required: the organization's client id",
    )


@pytest.mark.parametrize("port", ["65536", "99999", "-1"])
def test_a_port_out_of_range_says_it_is_not_a_port(port: str) -> None:
    message = config_error({"listen": f"127.0.0.1:{port}"})

    assert message == (
        f"--listen / SMARTDOC_PROXY_LISTEN: {port} is not a port (a port is 1 to 65535, or 0 "
        "for any free one)"
    )


def test_a_port_that_is_no_number_says_what_the_address_should_look_like() -> None:
    message = config_error({"listen": "127.0.0.1:http"})

    assert message == (
        "--listen / SMARTDOC_PROXY_LISTEN: '127.0.0.1:http' is not HOST:PORT (for example "
        "127.0.0.1:8080)"
    )


def test_every_bad_setting_is_reported_at_once_one_line_each() -> None:
    flags = {"listen": "127.0.0.1:65536", "scope": " ", "client_auth": "digest"}
    env = {"SMARTDOC_TOKEN_TIMEOUT_SECONDS": "soon"}

    with pytest.raises(ConfigError) as caught:
        load_config(flags, env)

    # In the order of the options table, each naming its own option.
    assert [m.split(": ")[0] for m in caught.value.messages] == [
        "--listen / SMARTDOC_PROXY_LISTEN",
        "--client-id / SMARTDOC_CLIENT_ID",
        "--client-secret-file / SMARTDOC_CLIENT_SECRET_FILE",
        "--scope / SMARTDOC_SCOPE",
        "--client-auth / SMARTDOC_CLIENT_AUTH",
        "--token-timeout-seconds / SMARTDOC_TOKEN_TIMEOUT_SECONDS",
    ]
    assert str(caught.value) == "\n".join(caught.value.messages)


def test_a_bad_upstream_is_reported_once_though_the_token_url_derives_from_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"upstream": "ftp://api.example"})

    assert len(caught.value.messages) == 1
    assert caught.value.messages[0].startswith("--upstream / SMARTDOC_UPSTREAM: ")


def test_the_rules_across_settings_wait_until_every_setting_is_valid() -> None:
    # Beyond loopback with no allow-list: refused, but only once the scope is valid too.
    beyond = {"listen": "0.0.0.0:8080", "scope": " "}

    with pytest.raises(ConfigError) as caught:
        load(beyond)

    assert caught.value.messages == (
        "--scope / SMARTDOC_SCOPE: is required: OAuth2 scope to request",
    )


def test_the_rules_across_settings_are_reported_together(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not checked here", encoding="utf-8")
    flags = {"listen": "0.0.0.0:8080", "tls_cert_file": str(cert)}

    with pytest.raises(ConfigError) as caught:
        load(flags | {"token_url": "http://tokens.example/connect/token"})

    assert [m.split(": ")[0] for m in caught.value.messages] == [
        "--tls-cert-file / SMARTDOC_PROXY_TLS_CERT_FILE",
        "--token-url / SMARTDOC_TOKEN_URL",
        "--listen / SMARTDOC_PROXY_LISTEN",
    ]


def test_the_toml_file_s_problems_come_with_the_other_settings_problems(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'listne = "127.0.0.1:1"\nclient_id = true\n')

    with pytest.raises(ConfigError) as caught:
        load_config({"config": path, "scope": " "}, SECRET_ENV)

    messages = caught.value.messages
    assert messages[0].startswith(f"{path}: unknown setting 'listne'")
    # client_id's wrong type is its one problem: it is not also reported as missing.
    assert messages[1] == f"{path}: client_id must be a string or a number"
    assert messages[2].startswith("--scope / SMARTDOC_SCOPE: is required")
    assert len(messages) == 3


def test_check_s_options_alone_are_judged_when_only_those_are_asked_for() -> None:
    serving = {
        "SMARTDOC_PROXY_LISTEN": "0.0.0.0:8080",  # beyond loopback, no allow-list
        "SMARTDOC_LOG_LEVEL": "LOUD",
        "SMARTDOC_UPSTREAM_POOL_SIZE": "0",
    }
    with pytest.raises(ConfigError) as caught:
        load(env=serving)
    assert len(caught.value.messages) == 2  # and the open door, once these two are fixed

    config = load_config({"client_id": CLIENT_ID}, SECRET_ENV | serving, only=CHECK_OPTIONS)

    assert config.listen == Listen("127.0.0.1", 8080)
    assert config.log_level == "INFO"
    assert config.upstream_pool_size == 100


def test_check_still_judges_the_token_request_s_settings() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            {"token_url": "http://tokens.example/connect/token"},
            SECRET_ENV,
            only=CHECK_OPTIONS,
        )

    assert [m.split(": ")[0] for m in caught.value.messages] == [
        "--client-id / SMARTDOC_CLIENT_ID",
    ]
    with pytest.raises(ConfigError, match=r"--token-url / SMARTDOC_TOKEN_URL: .* in clear"):
        load_config(
            {"client_id": CLIENT_ID, "token_url": "http://tokens.example/connect/token"},
            SECRET_ENV,
            only=CHECK_OPTIONS,
        )


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        pytest.param('listne = "127.0.0.1:1"\n', "'listne'", id="unknown-key"),
        pytest.param("[server]\nlisten = 1\n", "'server'", id="table-is-an-unknown-key"),
        pytest.param("scope = true\n", "scope", id="boolean-value"),
        pytest.param("scope = [1, 2]\n", "scope", id="array-value"),
    ],
)
def test_an_invalid_toml_setting_is_refused_naming_file_and_key(
    tmp_path: Path, toml: str, named: str
) -> None:
    path = write_toml(tmp_path, toml)

    message = config_error({"config": path})

    assert message.startswith(f"{path}: ")
    assert named in message


def test_client_secret_in_the_toml_file_is_refused_pointing_to_the_secret_file(
    tmp_path: Path,
) -> None:
    path = write_toml(tmp_path, f'client_secret = "{SECRET}"\n')

    message = config_error({"config": path})

    assert message.startswith(f"{path}: client_secret is not read from the config file")
    assert "client_secret_file" in message
    assert "SMARTDOC_CLIENT_SECRET" in message


def test_invalid_toml_is_refused_naming_the_config_option(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'scope = "unterminated\n')

    message = config_error({"config": path})

    assert message.startswith("--config / SMARTDOC_PROXY_CONFIG: ")
    assert f"{path} is not valid TOML" in message


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_unreadable_toml_file_is_refused_naming_the_config_option(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "absent.toml" if kind == "missing" else tmp_path

    message = config_error(env={"SMARTDOC_PROXY_CONFIG": str(path)})

    assert message.startswith(f"--config / SMARTDOC_PROXY_CONFIG: cannot read {path}: ")


def test_the_secret_never_appears_in_the_repr_of_config() -> None:
    config = load()

    assert config.client_secret == SECRET
    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert "client_secret_file=None" in repr(config)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104 (a value under test, nothing binds it)
        ("::", False),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("fe80::1", False),
        ("proxy.example", False),
        ("", False),
    ],
)
def test_listen_is_loopback(host: str, loopback: bool) -> None:
    assert Listen(host, 8080).is_loopback is loopback


@pytest.mark.parametrize(
    ("listen", "text"), [(Listen("127.0.0.1", 80), "127.0.0.1:80"), (Listen("::1", 80), "[::1]:80")]
)
def test_listen_prints_as_host_and_port(listen: Listen, text: str) -> None:
    assert str(listen) == text


def uncommented_example(text: str) -> tuple[str, list[str]]:
    """The example file with its ``# key = value`` lines turned into settings, and the keys."""
    lines, keys = [], []
    for line in text.splitlines():
        match = COMMENTED_SETTING.match(line)
        if match:
            keys.append(match.group(1))
            lines.append(line.removeprefix("# "))
    return "\n".join(lines) + "\n", keys


def test_example_toml_documents_every_option_but_the_secret() -> None:
    _, keys = uncommented_example(EXAMPLE_TOML.read_text(encoding="utf-8"))

    assert sorted(keys) == sorted(o.name for o in OPTIONS if o.name != "client_secret")
    assert len(keys) == len(set(keys))


def test_example_toml_explains_each_option_in_a_comment_above_it() -> None:
    lines = EXAMPLE_TOML.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if COMMENTED_SETTING.match(line):
            above = lines[number - 1]
            assert above.startswith("# "), line
            assert not COMMENTED_SETTING.match(above), line


def test_example_toml_uncommented_loads_and_yields_the_defaults(tmp_path: Path) -> None:
    settings, _ = uncommented_example(EXAMPLE_TOML.read_text(encoding="utf-8"))
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET, encoding="utf-8")
    # The example names files that do not exist here, and that have no default: flags
    # override them in both.
    files = {"client_secret_file": str(secret_file), "upstream_ca_file": str(secret_file)}
    overrides = {"config": write_toml(tmp_path, settings)} | files

    from_example = load_config(overrides, {})
    client_id = from_example.client_id
    defaults = load_config({"client_id": client_id} | files, {})

    assert client_id
    assert from_example == defaults


def readme_rows() -> dict[str, list[str]]:
    """The README's table rows, keyed by the environment variable(s) in their second cell."""
    assert README.is_file(), "README.md is missing: its configuration table documents OPTIONS"
    rows: dict[str, list[str]] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        if not line.lstrip().startswith("|"):
            continue
        # GitHub tables escape a "|" inside a cell (post\|basic); code spans are only markup.
        cells = [
            c.replace("\\|", "|").replace("`", "").strip()
            for c in re.split(r"(?<!\\)\|", line)[1:-1]
        ]
        if len(cells) >= 3:
            for env in re.findall(r"\bSMARTDOC_[A-Z_]+\b", cells[1]):
                rows.setdefault(env, cells)
    return rows


def test_readme_documents_every_option() -> None:
    rows = readme_rows()
    for option in (*OPTIONS, CONFIG_FILE):
        assert option.env in rows, f"README.md has no table row for {option.env}"
        flag_cell, _, default_cell = rows[option.env][:3]
        if option.flag:
            spelled = option.flag if option.switch else f"{option.flag} {option.metavar}"
            assert spelled in flag_cell, option.name
        else:
            assert "(none" in flag_cell or "(no flag" in flag_cell, option.name
            assert "--" not in flag_cell, option.name
        if option.name == "token_url":
            assert "upstream + /connect/token" in default_cell
        elif option.name in ("client_id", "client_secret_file"):
            assert "required" in default_cell, option.name
        elif option.default is not None:
            # "10" must not be found in "100": the default stands alone in its cell.
            alone = rf"(?<![\w.]){re.escape(option.default)}(?![\w.])"
            assert re.search(alone, default_cell), option.name


def test_relative_paths_in_the_toml_file_are_taken_from_the_file_s_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "secret").write_text(SECRET, encoding="utf-8")
    (folder / "keys").write_text("alice key-1\n", encoding="utf-8")
    toml = write_toml(folder, 'client_secret_file = "secret"\ninbound_keys_file = "./keys"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config({"client_id": CLIENT_ID, "config": toml}, {})

    assert config.client_secret_file == folder / "secret"
    assert config.inbound_keys_file == folder / "keys"


def test_relative_paths_from_flags_and_environment_are_taken_from_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secret").write_text(SECRET, encoding="utf-8")
    (tmp_path / "keys").write_text("key-1\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    config = load_config(
        {"client_id": CLIENT_ID, "client_secret_file": "secret"},
        {"SMARTDOC_PROXY_INBOUND_KEYS_FILE": "keys"},
    )

    assert config.client_secret_file == tmp_path / "secret"
    assert config.inbound_keys_file == tmp_path / "keys"


@pytest.mark.parametrize(
    ("flags", "env"),
    [
        pytest.param({"config": "absent.toml"}, {}, id="config-file"),
        pytest.param({"client_secret_file": "absent-secret"}, {}, id="secret-file"),
        pytest.param({}, {"SMARTDOC_PROXY_INBOUND_KEYS_FILE": "absent-keys"}, id="keys-file"),
        pytest.param({"tls_cert_file": "c.pem", "tls_key_file": "k.pem"}, {}, id="tls-files"),
    ],
)
def test_every_file_error_shows_the_absolute_path_it_tried(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: dict[str, str | None],
    env: dict[str, str],
) -> None:
    monkeypatch.chdir(tmp_path)
    secret = {} if "client_secret_file" in flags else SECRET_ENV

    with pytest.raises(ConfigError) as caught:
        load_config({"client_id": CLIENT_ID} | flags, secret | env)

    for message, name in zip(caught.value.messages, [*flags, *env], strict=True):
        relative = (flags | env)[name] or ""
        assert f" {tmp_path / relative}" in message, message


def test_a_toml_file_s_errors_name_it_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_toml(tmp_path, 'listne = "x"\n')
    monkeypatch.chdir(tmp_path)

    message = config_error({"config": "proxy.toml"})

    assert message.startswith(f"{tmp_path / 'proxy.toml'}: unknown setting 'listne'")


def test_a_toml_file_that_is_not_utf8_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "proxy.toml"
    path.write_bytes(b'scope = "caf\xe9"\n')

    message = config_error({"config": str(path)})

    assert message == f"--config / SMARTDOC_PROXY_CONFIG: {path} is not UTF-8 text"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(b"", "is empty; write the client secret into it", id="empty"),
        pytest.param(b" \n", "is empty; write the client secret into it", id="blank"),
        pytest.param(b"\xff\xfe", "is not UTF-8 text", id="not-text"),
    ],
)
def test_a_secret_file_without_a_secret_is_a_configuration_error(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(content)

    with pytest.raises(ConfigError) as caught:
        load_config({"client_id": CLIENT_ID, "client_secret_file": str(secret_file)}, {})

    assert caught.value.messages == (
        f"--client-secret-file / SMARTDOC_CLIENT_SECRET_FILE: {secret_file} {problem}",
    )


@pytest.mark.parametrize("value", ["", "  "])
def test_a_secret_variable_set_to_nothing_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"client_id": CLIENT_ID}, {"SMARTDOC_CLIENT_SECRET": value})

    assert caught.value.messages == (
        "SMARTDOC_CLIENT_SECRET: is set but empty; put the secret in it, or unset it and use "
        "--client-secret-file",
    )


def test_a_secret_variable_set_to_nothing_gives_way_to_a_secret_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET, encoding="utf-8")

    config = load_config(
        {"client_id": CLIENT_ID, "client_secret_file": str(secret_file)},
        {"SMARTDOC_CLIENT_SECRET": ""},
    )

    assert (config.client_secret, config.client_secret_file) == (None, secret_file)


ORGANIZATIONS_TOML = ROOT / "config" / "smartdoc-proxy.organizations.example.toml"


def test_the_organizations_example_loads_documents_every_table_key_and_is_in_the_readme(
    tmp_path: Path,
) -> None:
    text = ORGANIZATIONS_TOML.read_text(encoding="utf-8")
    # The example names files that do not exist here: the same names, in a folder that has them.
    for name in ("acme-secret", "globex-secret", "acme-keys", "globex-keys"):
        (tmp_path / name).write_text(f"{name} {name}-key\n", encoding="utf-8")
    here = text.replace("/run/secrets/smartdoc/", f"{tmp_path}/")
    here = here.replace("/etc/smartdoc-proxy/", f"{tmp_path}/")

    config = load_config({"config": write_toml(tmp_path, here)}, {})

    acme, globex = config.organizations
    assert (acme.name, acme.client_id, str(acme.listen)) == (
        "acme",
        "acme-client-id",
        "127.0.0.1:8081",
    )
    assert (globex.name, globex.listen, globex.inbound_keys_file) == (
        "globex", None, tmp_path / "globex-keys"
    )  # fmt: skip
    for key in TABLE_KEYS:
        assert re.search(rf"^(# )?{key} = ", text, re.MULTILINE), key
    settings = text[text.index("\nlisten = ") + 1 :]
    assert f"```toml\n{settings}```" in README.read_text(encoding="utf-8")
