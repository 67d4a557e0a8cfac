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

from aiohttp import web

from proxy import demo, egress, logs, secret_expiry
from proxy.app import create_app, credentials, token_session
from proxy.config import CONFIG_FILE, OPTIONS, Config, ConfigError, Organization, load_config
from proxy.errors import TokenError
from proxy.grants import TokenClient
from proxy.server import serve
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
    subs = {}
    for name, command, help_text in (
        ("run", run, "serve the proxy"),
        ("check", check, "fetch one token with the configured credentials and say if they work"),
    ):
        subs[name] = commands.add_parser(name, parents=[proxy_options], help=help_text)
        subs[name].set_defaults(command=command)
    subs["check"].add_argument(
        "--organization",
        metavar="NAME",
        help="try only this organization's credentials (default: every organization's)",
    )
    standin = commands.add_parser("standin", help="serve the built-in SmartDocumentor stand-in")
    add_arguments(standin)
    standin.set_defaults(command=run_standin)
    demo_parser = commands.add_parser("demo", help="the stand-in and the proxy together")
    demo_parser.add_argument(
        "--listen", metavar="HOST:PORT", help=f"where the proxy listens ({demo.DEFAULT_LISTEN})"
    )
    demo_parser.add_argument(
        "--organizations",
        metavar="N",
        help="serve N organizations, each on its own port from the --listen port on (default 1)",
    )
    demo_parser.set_defaults(command=run_demo)
    return parser


def _proxy_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    # Taken only to refuse it without echoing the value (argparse would print it back).
    options.add_argument("--client-secret", dest="secret_on_command_line", help=argparse.SUPPRESS)
    for option in (*OPTIONS, CONFIG_FILE):
        if option.flag and option.switch:
            options.add_argument(
                option.flag, dest=option.name, action="store_const", const="true", help=option.help
            )
        elif option.flag:
            action = "append" if option.repeatable else "store"
            options.add_argument(
                option.flag,
                dest=option.name,
                metavar=option.metavar,
                help=option.help,
                action=action,
            )
    return options


def _config(args: argparse.Namespace, env: Mapping[str, str]) -> Config:
    if args.secret_on_command_line is not None:
        raise ConfigError(
            "--client-secret: there is no such flag, since a secret on the command line shows "
            "in ps; use --client-secret-file or SMARTDOC_CLIENT_SECRET (and consider the secret "
            "you typed exposed)"
        )
    flags = {
        option.name: _flag(getattr(args, option.name, None)) for option in (*OPTIONS, CONFIG_FILE)
    }
    return load_config(flags, env)


def _flag(value: str | list[str] | None) -> str | None:
    # A repeatable flag arrives as a list: the same comma-separated form as the environment.
    return ",".join(value) if isinstance(value, list) else value


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    config = _config(args, env)
    logs.configure(config.log_format, config.log_level)
    app = create_app(config, proxies=egress.EgressProxies.from_environment(env))
    serve(app, config, load=lambda: _config(args, env))
    return 0


def _cannot_listen(option: str, listen: str, exc: OSError) -> ConfigError:
    return ConfigError(f"{option}: cannot listen on {listen}: {exc.strerror or exc}")


def check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    config = _config(args, env)
    logs.configure(config.log_format, "WARNING")
    chosen = _chosen(config, args.organization)
    return asyncio.run(_check(config, chosen, egress.EgressProxies.from_environment(env)))


def _chosen(config: Config, name: str | None) -> tuple[Organization, ...]:
    if name is None:
        return config.organizations
    try:
        return (config.organization(name),)
    except KeyError:
        names = ", ".join(organization.name for organization in config.organizations)
        raise ConfigError(f"--organization: there is no organization {name!r}; {names}") from None


async def _check(
    config: Config, chosen: Sequence[Organization], proxies: egress.EgressProxies
) -> int:
    """Every chosen organization at once; one line each (the single-organization settings
    keep their own lines). Exit status 1 if any fails."""
    results = await asyncio.gather(*(_try(config, org, proxies) for org in chosen))
    for organization, (_, lines) in zip(chosen, results, strict=True):
        if config.single_organization:
            print("\n  ".join(lines))
        else:
            # One line an organization: the notes follow the verdict, ";" between them.
            print(f"{organization.name}: " + "; ".join(line.rstrip(";") for line in lines))
    return 0 if all(ok for ok, _ in results) else 1


async def _try(
    config: Config, organization: Organization, proxies: egress.EgressProxies
) -> tuple[bool, list[str]]:
    """Whether the organization's credentials get a token, and what to say about it."""
    client = f"client id {organization.client_id!r}"
    async with token_session(config, proxies, organization=organization) as session:
        try:
            grant = await TokenClient(session, credentials(config, organization)).fetch()
        except TokenError as exc:
            failed = f"FAILED: {exc.detail} for {client} at {organization.token_url}"
            return False, [failed, *_failure_notes(exc)]
    lines = [
        f"OK: {organization.token_url} issued a Bearer token to {client}, "
        f"valid for {grant.lifetime_seconds:.0f} s"
    ]
    if organization.secret_expires is not None:
        left = secret_expiry.days_left(organization.secret_expires, secret_expiry.today_utc())
        lines.append(
            f"the client secret expires on {organization.secret_expires}: {left} days left"
        )
    return True, lines


def _failure_notes(exc: TokenError) -> list[str]:
    notes = []
    if (cause := egress.explain(exc.__cause__)) is not None:
        notes.append(cause)
    if exc.code:  # only the endpoint's own OAuth error codes are kept in .code
        said = f": {exc.description}" if exc.description else ""
        notes.append(f"the token endpoint said: {exc.code}{said}")
    if exc.code == "invalid_client":
        notes.append("the client id or secret is wrong, or the secret has expired;")
        notes.append("generate a new secret for the organization and update the secret file")
    return notes


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
    count = args.organizations or "1"
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(
            f"--organizations: {count!r} is not a number of organizations (1 or more)"
        )
    # One organization is the demo as it always was: no organization tables at all.
    several = int(count) > 1
    prepared = demo.prepare_organizations(listen, int(count)) if several else demo.prepare(listen)
    config = prepared.config
    logs.configure(config.log_format, config.log_level)
    app = demo.with_standin(create_app(config), prepared)
    serve(app, config, announce=lambda listen, own: demo.banner(prepared, listen, own))
    return 0
