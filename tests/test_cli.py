"""The command line: one-line configuration errors, ``check`` against a real token endpoint
(run as a real process), and the subcommands ``--help`` offers."""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import socket
import sys
import tomllib
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from proxy.cli import main
from proxy.version import SOURCE_VERSION
from tests.fakes import CLIENT_ID, SECRET, FakeTokenEndpoint, child_env, token_app
from tests.unreachable import CAUSE_IDS, CAUSES, TIMEOUT_SECONDS, Endpoint

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
PROCESS_TIMEOUT_SECONDS = 20


def base_env(**extra: str) -> dict[str, str]:
    """A clean environment for a child process: nothing of the caller's SMARTDOC_* leaks in."""
    return child_env(**extra)


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``python -m proxy ARGS`` as a real process: exit status, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), PROCESS_TIMEOUT_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def token_server(aiohttp_server, endpoint: FakeTokenEndpoint) -> TestServer:  # type: ignore[no-untyped-def]
    server: TestServer = await aiohttp_server(token_app(endpoint))
    return server


def token_url(server: TestServer) -> str:
    return str(server.make_url("/connect/token"))


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        pytest.param(["run"], {"SMARTDOC_CLIENT_SECRET": SECRET}, "--client-id", id="no-client-id"),
        pytest.param(["run", "--client-id", CLIENT_ID], {}, "--client-secret-file", id="no-secret"),
        pytest.param(
            ["run", "--client-id", CLIENT_ID, "--listen", "nowhere"],
            {"SMARTDOC_CLIENT_SECRET": SECRET},
            "--listen",
            id="bad-listen",
        ),
        pytest.param(
            ["check", "--client-id", CLIENT_ID, "--upstream", "ftp://api.example"],
            {"SMARTDOC_CLIENT_SECRET": SECRET},
            "--upstream",
            id="check-bad-upstream",
        ),
        pytest.param(
            ["run", "--client-id", CLIENT_ID],
            {"SMARTDOC_CLIENT_SECRET": SECRET, "SMARTDOC_SHUTDOWN_GRACE_SECONDS": "-1"},
            "SMARTDOC_SHUTDOWN_GRACE_SECONDS",
            id="bad-number-from-environment",
        ),
        pytest.param(
            ["run", "--client-id", CLIENT_ID, "--config", "/nonexistent/proxy.toml"],
            {"SMARTDOC_CLIENT_SECRET": SECRET},
            "--config",
            id="unreadable-config-file",
        ),
    ],
)
def test_a_configuration_error_exits_2_with_one_line_naming_the_option(
    capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str], named: str
) -> None:
    status = main(argv, env=env)

    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("smartdoc-proxy: ")
    assert named in lines[0]
    assert SECRET not in err


def test_every_configuration_error_is_a_line_of_its_own(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["run", "--listen", "127.0.0.1:65536", "--scope", " "], env={})

    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err.splitlines() == [
        "smartdoc-proxy: --listen / SMARTDOC_PROXY_LISTEN: 65536 is not a port (a port is 1 to "
        "65535, or 0 for any free one)",
        "smartdoc-proxy: --client-id / SMARTDOC_CLIENT_ID: is required: the organization's "
        "client id",
        "smartdoc-proxy: --client-secret-file / SMARTDOC_CLIENT_SECRET_FILE: is required (or set "
        "SMARTDOC_CLIENT_SECRET)",
        "smartdoc-proxy: --scope / SMARTDOC_SCOPE: is required: OAuth2 scope to request",
    ]


def test_the_readme_shows_configuration_errors_as_they_are_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["run", "--listen", "127.0.0.1:65536"], env={})

    printed = capsys.readouterr().err
    example = f"$ smartdoc-proxy run --listen 127.0.0.1:65536\n{printed}```"
    assert example in (ROOT / "README.md").read_text(encoding="utf-8")


def test_client_secret_in_the_config_file_is_refused_without_showing_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(f'client_id = "{CLIENT_ID}"\nclient_secret = "{SECRET}"\n', "utf-8")

    status = main(["check", "--config", str(config)], env={})

    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("smartdoc-proxy: ")
    assert "client_secret_file" in err
    assert SECRET not in err


async def test_a_configuration_error_in_a_real_process_prints_no_traceback() -> None:
    status, out, err = await run_cli(
        "run",
        "--listen",
        "127.0.0.1:99999",
        env=base_env(SMARTDOC_CLIENT_ID=CLIENT_ID, SMARTDOC_CLIENT_SECRET=SECRET),
    )

    assert status == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("smartdoc-proxy: --listen / SMARTDOC_PROXY_LISTEN: ")
    assert "Traceback" not in err


async def test_check_with_working_credentials_says_ok_and_the_lifetime(
    token_server: TestServer, endpoint: FakeTokenEndpoint
) -> None:
    endpoint.expires_in = 1234

    status, out, err = await run_cli(
        "check",
        "--token-url",
        token_url(token_server),
        "--client-id",
        CLIENT_ID,
        env=base_env(SMARTDOC_CLIENT_SECRET=SECRET),
    )

    assert status == 0, err
    assert out.startswith("OK: ")
    assert "1234 s" in out
    assert CLIENT_ID in out
    assert SECRET not in out + err
    assert [r.form for r in endpoint.requests] == [
        {
            "grant_type": "client_credentials",
            "scope": "WebAPI",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
        }
    ]


async def test_check_reads_the_secret_from_the_secret_file(
    token_server: TestServer, endpoint: FakeTokenEndpoint, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")

    status, out, err = await run_cli(
        "check",
        "--token-url",
        token_url(token_server),
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        str(secret_file),
        env=base_env(),
    )

    assert status == 0, err
    assert out.startswith("OK: ")
    assert endpoint.requests[0].form["client_secret"] == SECRET
    assert SECRET not in out + err


async def test_check_reports_invalid_client_without_printing_the_secret(
    token_server: TestServer, endpoint: FakeTokenEndpoint
) -> None:
    # A careless endpoint that echoes the secret back must not get it printed either.
    endpoint.failures.append(
        (400, {"error": "invalid_client", "error_description": f"unknown secret {SECRET}"})
    )

    status, out, err = await run_cli(
        "check",
        "--token-url",
        token_url(token_server),
        "--client-id",
        CLIENT_ID,
        env=base_env(SMARTDOC_CLIENT_SECRET=SECRET),
    )

    assert status == 1
    assert out.startswith("FAILED: ")
    assert "invalid_client" in out
    assert "400" in out
    assert SECRET not in out
    assert SECRET not in err
    assert len(endpoint.requests) == 1


@pytest.mark.parametrize(("endpoint", "reason"), CAUSES, ids=CAUSE_IDS)
async def test_check_says_why_the_token_endpoint_cannot_be_reached(
    endpoint: Endpoint, reason: str
) -> None:
    async with endpoint() as url:
        status, out, err = await run_cli(
            "check",
            "--token-url",
            url,
            "--client-id",
            CLIENT_ID,
            "--token-timeout-seconds",
            str(TIMEOUT_SECONDS),
            env=base_env(SMARTDOC_CLIENT_SECRET=SECRET),
        )

    assert status == 1
    first, *more = out.splitlines()
    assert first == f"FAILED: the token endpoint {reason} (client id {CLIENT_ID!r}, {url})"
    # Only a certificate failure gets a second line: the hint about --upstream-ca-file.
    assert all("--upstream-ca-file" in line for line in more)
    assert "Error" not in out  # no Python class name, in any of them
    assert SECRET not in out + err


async def test_check_interrupted_while_it_waits_says_so_without_a_traceback() -> None:
    connected = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await reader.read(-1)
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/connect/token"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "check", "--token-url", url, "--client-id", CLIENT_ID,
        env=base_env(SMARTDOC_CLIENT_SECRET=SECRET), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await asyncio.wait_for(connected.wait(), PROCESS_TIMEOUT_SECONDS)
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), PROCESS_TIMEOUT_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
        server.close()

    assert process.returncode == 130
    assert out == b""
    assert err.decode() == (
        "smartdoc-proxy: check interrupted before the token endpoint answered\n"
    )


async def test_check_with_basic_client_auth_sends_the_credentials_in_the_header_only(
    token_server: TestServer, endpoint: FakeTokenEndpoint
) -> None:
    status, out, err = await run_cli(
        "check",
        "--token-url",
        token_url(token_server),
        "--client-id",
        CLIENT_ID,
        "--client-auth",
        "basic",
        env=base_env(SMARTDOC_CLIENT_SECRET=SECRET),
    )

    assert status == 0, err
    assert out.startswith("OK: ")
    [request] = endpoint.requests
    scheme, _, encoded = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"{CLIENT_ID}:{SECRET}"
    assert request.form == {"grant_type": "client_credentials", "scope": "WebAPI"}


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"], env={})

    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "check", "standin", "demo"):
        assert f"    {command} " in out, command


async def test_version_says_the_project_s_version() -> None:
    status, out, err = await run_cli("--version", env=base_env())

    assert (status, out, err) == (0, f"smartdoc-proxy {VERSION}\n", "")


def test_the_version_of_an_uninstalled_source_tree_is_pyproject_s() -> None:
    assert SOURCE_VERSION == VERSION


def test_help_describes_the_tool_for_its_users(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"], env={})

    out = capsys.readouterr().out
    assert "reverse proxy for the SmartDocumentor cloud API" in out
    assert "smartdoc-proxy demo" in out
    assert "sys.argv" not in out
    assert "--version" in out


def test_run_help_lists_every_proxy_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"], env={})

    out = capsys.readouterr().out
    for flag in ("--listen", "--upstream", "--token-url", "--client-id", "--config"):
        assert flag in out
    assert "--client-secret " not in out


def test_check_help_lists_only_the_options_check_uses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"], env={})

    out = capsys.readouterr().out
    for flag in ("--token-url", "--client-id", "--client-secret-file", "--scope", "--config"):
        assert flag in out
    for serving in ("--listen", "--log-level", "--allow ", "--inbound-keys-file", "--tls-"):
        assert serving not in out


async def test_check_is_not_stopped_by_settings_only_serving_reads(
    token_server: TestServer,
) -> None:
    # As in the container image, whose environment listens beyond loopback for `run`.
    env = base_env(
        SMARTDOC_CLIENT_SECRET=SECRET,
        SMARTDOC_PROXY_LISTEN="0.0.0.0:8080",
        SMARTDOC_LOG_LEVEL="LOUD",
    )

    status, out, err = await run_cli(
        "check", "--token-url", token_url(token_server), "--client-id", CLIENT_ID, env=env
    )

    assert status == 0, err
    assert out.startswith("OK: ")


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        pytest.param(["run", "--bogus"], "usage: smartdoc-proxy run ", id="run"),
        pytest.param(["check", "--listen", "x:1"], "usage: smartdoc-proxy check ", id="check"),
        pytest.param(["standin", "--bogus"], "usage: smartdoc-proxy standin ", id="standin"),
    ],
)
def test_an_unknown_flag_after_a_command_prints_that_command_s_usage(
    capsys: pytest.CaptureFixture[str], argv: list[str], usage: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv, env={})

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith(usage)
    assert f"smartdoc-proxy {argv[0]}: error: unrecognized arguments: {argv[1]}" in err


def test_standin_help_shows_readable_value_names_and_real_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["standin", "--help"], env={})

    out = capsys.readouterr().out
    assert "(default None)" not in out
    assert "(default ())" not in out
    assert "hidden" not in out
    # argparse's fallback is the field's name in capitals, such as FAIL_TOKEN_REQUESTS.
    assert not re.search(r"--[a-z-]+ [A-Z]+_[A-Z_]+", out), out
    assert "--client-secret SECRET" in out
    assert "(default demo-secret)" in " ".join(out.split())
    assert "--fail-token-mode invalid_client|500|hang" in out
    assert "--webhook-url URL" in out


async def test_a_port_already_in_use_exits_2_with_one_line_naming_listen() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _out, err = await run_cli(
            "run",
            "--listen",
            f"127.0.0.1:{port}",
            "--token-url",
            "http://127.0.0.1:9/connect/token",
            env=base_env(SMARTDOC_CLIENT_ID=CLIENT_ID, SMARTDOC_CLIENT_SECRET=SECRET),
        )
    assert status == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("smartdoc-proxy: --listen / SMARTDOC_PROXY_LISTEN: cannot listen on")
    assert "Traceback" not in err
    assert "listening on" not in err  # nothing announced that never happened


async def test_the_standin_on_a_port_in_use_exits_2_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _out, err = await run_cli(
            "standin", "--listen", f"127.0.0.1:{port}", env=base_env()
        )
    assert status == 2
    assert err.strip().splitlines()[-1].startswith("smartdoc-proxy: --listen: cannot listen on")
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_secret_given_as_a_flag_is_refused_without_echoing_it(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    env = {"SMARTDOC_CLIENT_ID": CLIENT_ID, "SMARTDOC_CLIENT_SECRET": SECRET}
    assert main([command, "--client-secret", "typed-secret-value"], env=env) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("smartdoc-proxy: --client-secret: there is no such flag")
    assert "typed-secret-value" not in err
