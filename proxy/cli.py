"""The command line: the only module that reads ``sys.argv`` and the environment.

``run`` serves the proxy, ``check`` tries the credentials once, ``standin`` serves the built-in
SmartDocumentor stand-in, and ``demo`` runs both together with nothing configured.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

import aiohttp
from aiohttp import web

from proxy import demo, limits, logs, runner
from proxy.app import create_app, credentials
from proxy.config import CONFIG_FILE, OPTIONS, OPTIONS_BY_NAME, Config, ConfigError, load_config
from proxy.errors import TokenError
from proxy.grants import TokenClient
from proxy.standin import create_standin_app
from proxy.standin.settings import (
    StandinSettingsError,
    add_arguments,
    listen_from_args,
    settings_from_args,
)

logger = logging.getLogger(__name__)

PROG = "smartdoc-proxy"
Command = Callable[[argparse.Namespace, Mapping[str, str]], int]


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for a configuration error)."""
    args = build_parser().parse_args(argv)
    command: Command = args.command
    try:
        return command(args, os.environ if env is None else env)
    except (ConfigError, StandinSettingsError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    # No abbreviations: "--client-secret VALUE" must not pass for --client-secret-file.
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.splitlines()[0], allow_abbrev=False
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    proxy_options = _proxy_options()
    for name, command, help_text in (
        ("run", run, "serve the proxy"),
        ("check", check, "fetch one token with the configured credentials and say if they work"),
    ):
        sub = commands.add_parser(name, parents=[proxy_options], help=help_text)
        sub.set_defaults(command=command)
    standin = commands.add_parser("standin", help="serve the built-in SmartDocumentor stand-in")
    add_arguments(standin)
    standin.set_defaults(command=run_standin)
    demo_parser = commands.add_parser("demo", help="the stand-in and the proxy together")
    demo_parser.add_argument(
        "--listen", metavar="HOST:PORT", help=f"where the proxy listens ({demo.DEFAULT_LISTEN})"
    )
    demo_parser.set_defaults(command=run_demo)
    return parser


def _proxy_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    # Taken only to refuse it without echoing the value (argparse would print it back).
    options.add_argument("--client-secret", dest="secret_on_command_line", help=argparse.SUPPRESS)
    for option in (*OPTIONS, CONFIG_FILE):
        if option.flag:
            options.add_argument(
                option.flag, dest=option.name, metavar=option.metavar, help=option.help
            )
    return options


def _config(args: argparse.Namespace, env: Mapping[str, str]) -> Config:
    if args.secret_on_command_line is not None:
        raise ConfigError(
            "--client-secret: there is no such flag, since a secret on the command line shows "
            "in ps; use --client-secret-file or SMARTDOC_CLIENT_SECRET (and consider the secret "
            "you typed exposed)"
        )
    flags = {option.name: getattr(args, option.name, None) for option in (*OPTIONS, CONFIG_FILE)}
    return load_config(flags, env)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    config = _config(args, env)
    logs.configure(config.log_format, config.log_level)
    serve(create_app(config), config)
    return 0


def serve(app: web.Application, config: Config, announce: str | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then let requests in flight finish within the grace."""
    limits.raise_open_files_limit()
    if not config.listen.is_loopback:
        logger.warning(
            "listening on %s, not a loopback address: anyone who can reach it acts as the "
            "organization on SmartDocumentor",
            config.listen,
        )

    def listening(_: str) -> None:
        # run_app calls this once every socket listens, so nothing is announced before then.
        logger.info("proxy for %s listening on http://%s", config.upstream, config.listen)
        if announce:
            print(announce, flush=True)

    try:
        runner.run_app(
            app,
            config,
            host=config.listen.host,
            port=config.listen.port,
            # aiohttp reads a timeout of 0 as "wait forever"; a grace of 0 means "don't wait".
            shutdown_timeout=config.shutdown_grace_seconds or 0.001,
            handler_cancellation=True,
            access_log=None,
            print=listening,
        )
    except OSError as exc:
        raise _cannot_listen(OPTIONS_BY_NAME["listen"].sources, str(config.listen), exc) from exc


def _cannot_listen(option: str, listen: str, exc: OSError) -> ConfigError:
    return ConfigError(f"{option}: cannot listen on {listen}: {exc.strerror or exc}")


def check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    config = _config(args, env)
    logs.configure(config.log_format, "WARNING")
    return asyncio.run(_check(config))


async def _check(config: Config) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            grant = await TokenClient(session, credentials(config)).fetch()
        except TokenError as exc:
            print(f"FAILED: {exc.detail} for client id {config.client_id!r} at {config.token_url}")
            if exc.code:  # only the endpoint's own OAuth error codes are kept in .code
                said = f": {exc.description}" if exc.description else ""
                print(f"  the token endpoint said: {exc.code}{said}")
            if exc.code == "invalid_client":
                print("  the client id or secret is wrong, or the secret has expired;")
                print("  generate a new secret for the organization and update the secret file")
            return 1
    print(
        f"OK: {config.token_url} issued a Bearer token to client id {config.client_id!r}, "
        f"valid for {grant.lifetime_seconds:.0f} s"
    )
    return 0


def run_standin(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = settings_from_args(args)
    host, port = listen_from_args(args)
    logs.configure("text", "INFO")
    try:
        web.run_app(create_standin_app(settings), host=host, port=port, access_log=None)
    except OSError as exc:
        raise _cannot_listen("--listen", f"{host}:{port}", exc) from exc
    return 0


def run_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    listen = args.listen or env.get("SMARTDOC_PROXY_LISTEN") or demo.DEFAULT_LISTEN
    prepared = demo.prepare(listen)
    config = prepared.config
    logs.configure(config.log_format, config.log_level)
    serve(demo.with_standin(create_app(config), prepared), config, demo.banner(prepared))
    return 0
