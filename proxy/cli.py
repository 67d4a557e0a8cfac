"""The command line: the only module that reads ``sys.argv`` and the environment.

``run`` serves the proxy, ``check`` tries the credentials once, ``standin`` serves the built-in
SmartDocumentor stand-in, and ``demo`` runs both together with nothing configured.
:data:`DESCRIPTION` is what ``--help`` tells users.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from typing import TypeVar

from aiohttp import web

from proxy import demo, egress, logs, secret_expiry, supervisor
from proxy.app import create_app, credentials, token_session
from proxy.config import (
    CHECK_OPTIONS,
    CONFIG_FILE,
    OPTIONS,
    Config,
    ConfigError,
    Organization,
    load_config,
)
from proxy.errors import TokenError
from proxy.grants import TokenClient
from proxy.server import serve
from proxy.standin import create_standin_app
from proxy.standin.settings import (
    StandinSettings,
    StandinSettingsError,
    add_arguments,
    listen_from_args,
    settings_from_args,
)
from proxy.version import VERSION
from proxy.workers import Worker

logger = logging.getLogger(__name__)

PROG = "smartdoc-proxy"
DESCRIPTION = (
    "An authenticating reverse proxy for the SmartDocumentor cloud API: it holds the "
    "organization's client secret, keeps a valid token, and forwards every request with it, so "
    "clients need no credentials of their own. A built-in stand-in of the API serves offline work."
)
EPILOG = (
    "Start with 'smartdoc-proxy demo' (nothing to configure), or 'smartdoc-proxy check' to see "
    "whether your credentials work. 'smartdoc-proxy COMMAND --help' lists a command's options; "
    "every option can also be set in the environment or a TOML file (see the README)."
)
Command = Callable[[argparse.Namespace, Mapping[str, str]], int]
T = TypeVar("T")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for a configuration error)."""
    args = build_parser().parse_args(argv)
    # What `run --workers N` starts each worker with (the top level has no options but
    # --version and --help, so the command is the first word).
    args.arguments = list(sys.argv[1:] if argv is None else argv)[1:]
    command: Command = args.command
    try:
        return command(args, os.environ if env is None else env)
    except ConfigError as exc:
        for message in exc.messages:
            print(f"{PROG}: {message}", file=sys.stderr)
        return 2
    except StandinSettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    # No abbreviations: "--client-secret VALUE" must not pass for --client-secret-file.
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, epilog=EPILOG, allow_abbrev=False
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} {VERSION}", help="say the version and exit"
    )
    commands = parser.add_subparsers(
        title="commands", required=True, metavar="COMMAND", parser_class=_CommandParser
    )
    run_parser = commands.add_parser("run", parents=[_proxy_options()], help="serve the proxy")
    run_parser.set_defaults(command=run)
    check_parser = commands.add_parser(
        "check",
        parents=[_proxy_options(CHECK_OPTIONS)],
        help="fetch one token with the configured credentials and say if they work",
        description="Fetch one token with the configured credentials and say whether they work "
        "and, if not, why. Only the settings of the token request are read.",
    )
    check_parser.add_argument(
        "--organization",
        metavar="NAME",
        help="try only this organization's credentials (default: every organization's)",
    )
    check_parser.set_defaults(command=check)
    standin = commands.add_parser("standin", help="serve the built-in SmartDocumentor stand-in")
    add_arguments(standin)
    standin.set_defaults(command=run_standin)
    _add_demo(commands)
    return parser


def _add_demo(commands: argparse._SubParsersAction[_CommandParser]) -> None:
    demo_parser = commands.add_parser(
        "demo", help="the stand-in and the proxy in front of it, with nothing to configure"
    )
    demo_parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"where the proxy listens (default {demo.DEFAULT_LISTEN})",
    )
    demo_parser.add_argument(
        "--token-lifetime-seconds",
        metavar="SECONDS",
        type=int,
        default=StandinSettings().token_lifetime_seconds,
        help="lifetime of the stand-in's tokens (default %(default)s); a short one shows the "
        "proxy refreshing them, and what happens when it cannot",
    )
    demo_parser.add_argument(
        "--organizations",
        metavar="N",
        help="serve N organizations, each on its own port from the --listen port on (default 1)",
    )
    demo_parser.set_defaults(command=run_demo)


class _CommandParser(argparse.ArgumentParser):
    """A command's parser refuses what it does not know itself, so that the error shows this
    command's usage: argparse would hand the leftovers to the top level, whose usage only lists
    the commands."""

    # typeshed spells this as two overloads (with and without a namespace); one signature that
    # covers both is what argparse itself has.
    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def _proxy_options(names: Collection[str] | None = None) -> _CommandParser:
    """The flags of the options in ``names`` (all by default), and ``--config``: a parent for
    a command's parser, hence of the same class."""
    options = _CommandParser(add_help=False, allow_abbrev=False)
    # Taken only to refuse it without echoing the value (argparse would print it back).
    options.add_argument("--client-secret", dest="secret_on_command_line", help=argparse.SUPPRESS)
    for option in (*OPTIONS, CONFIG_FILE):
        if names is not None and option is not CONFIG_FILE and option.name not in names:
            continue
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
                help=option.help + (" (required)" if option.required else ""),
                action=action,
            )
    return options


def _config(
    args: argparse.Namespace, env: Mapping[str, str], only: Collection[str] | None = None
) -> Config:
    if args.secret_on_command_line is not None:
        raise ConfigError(
            "--client-secret: there is no such flag, since a secret on the command line shows "
            "in ps; use --client-secret-file or SMARTDOC_CLIENT_SECRET (and consider the secret "
            "you typed exposed)"
        )
    flags = {
        option.name: _flag(getattr(args, option.name, None)) for option in (*OPTIONS, CONFIG_FILE)
    }
    return load_config(flags, env, only=only)


def _flag(value: str | list[str] | None) -> str | None:
    # A repeatable flag arrives as a list: the same comma-separated form as the environment.
    return ",".join(value) if isinstance(value, list) else value


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    read = _config(args, env)
    worker = Worker.of(env)
    # A worker runs as its supervisor does: on the addresses it reserved, with the settings
    # the run started with (a replacement may start long after the file changed).
    config = worker.bound(read) if worker is not None else read
    several = worker is not None or config.workers > 1
    process = (
        (f"worker {worker.index}" if worker is not None else "supervisor") if several else None
    )
    logs.configure(config.log_format, config.log_level, process)
    if worker is not None and (changed := worker.changed(read)):
        logger.warning(
            "%s changed since the workers started, which needs a restart of the supervisor; "
            "kept as it was",
            ", ".join(changed),
        )
    proxies = egress.EgressProxies.from_environment(env)
    if worker is None and config.workers > 1:
        # Built once here only to refuse, in one line, what every worker would refuse (an
        # unreadable keys or CA file).
        create_app(config, proxies=proxies)
        return supervisor.supervise(config, args.arguments, env)

    def load() -> Config:
        loaded = _config(args, env)
        return worker.bound(loaded) if worker is not None else loaded

    app = create_app(config, proxies=proxies, worker=worker)
    serve(app, config, load=load, worker=worker)
    return 0


def _cannot_listen(option: str, listen: str, exc: OSError) -> ConfigError:
    return ConfigError(f"{option}: cannot listen on {listen}: {exc.strerror or exc}")


def check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    config = _config(args, env, only=CHECK_OPTIONS)
    logs.configure(config.log_format, "WARNING")
    chosen = _chosen(config, args.organization)
    results = asyncio.run(_interruptible(_tries(config, chosen, env)))
    if results is None:
        # Ctrl+C while the token endpoint keeps it waiting: stopped as asked, no traceback.
        print(f"{PROG}: check interrupted before the token endpoint answered", file=sys.stderr)
        return 130  # 128 + SIGINT, as shells report it
    return _report(config, chosen, results)


async def _tries(
    config: Config, chosen: Sequence[Organization], env: Mapping[str, str]
) -> list[tuple[bool, list[str]]]:
    """Every chosen organization at once: whether it got a token, and what to say."""
    proxies = egress.EgressProxies.from_environment(env)
    return list(await asyncio.gather(*(_try(config, org, proxies) for org in chosen)))


async def _interruptible(work: Coroutine[object, object, T]) -> T | None:
    """``work``'s result, or ``None`` once Ctrl+C has stopped it, whatever the cancellation
    became inside: aiohttp turns one that arrives while a connection is being set up into a
    connection error, which would otherwise be reported as the endpoint's failure."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        result = await task
    except asyncio.CancelledError:
        if not interrupted:
            raise
        return None
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    return None if interrupted else result


def _chosen(config: Config, name: str | None) -> tuple[Organization, ...]:
    if name is None:
        return config.organizations
    try:
        return (config.organization(name),)
    except KeyError:
        names = ", ".join(organization.name for organization in config.organizations)
        raise ConfigError(f"--organization: there is no organization {name!r}; {names}") from None


def _report(
    config: Config, chosen: Sequence[Organization], results: Sequence[tuple[bool, list[str]]]
) -> int:
    """One line an organization (the single-organization settings keep their own lines);
    exit status 1 if any failed."""
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
            failed = f"FAILED: {exc.detail} ({client}, {organization.token_url})"
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
    # The first line said why already; only a certificate or egress proxy note adds to it.
    if (cause := egress.explain(exc.__cause__, connect_errors=False)) is not None:
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
    settings = StandinSettings(token_lifetime_seconds=args.token_lifetime_seconds)
    count = args.organizations or "1"
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(
            f"--organizations: {count!r} is not a number of organizations (1 or more)"
        )
    # One organization is the demo as it always was: no organization tables at all.
    if int(count) > 1:
        prepared = demo.prepare_organizations(listen, int(count), settings)
    else:
        prepared = demo.prepare(listen, settings)
    config = prepared.config
    logs.configure(config.log_format, config.log_level)
    app = demo.with_standin(create_app(config), prepared)
    try:
        serve(app, config, announce=lambda listen, own: demo.banner(prepared, listen, own))
    except ConfigError as exc:
        # Most likely 8080 is taken: say how to pick another.
        raise ConfigError(
            f"{exc}; choose another port with `smartdoc-proxy demo --listen 127.0.0.1:PORT` "
            "(port 0 picks a free one)"
        ) from exc
    return 0
