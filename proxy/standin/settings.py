"""Settings of the SmartDocumentor stand-in, and the command-line flags that set them.

`StandinSettings` is the one frozen configuration object. Every field has a demo default, so
`StandinSettings()` is a usable stand-in, and each field is documented once, in its `help`
metadata, which is also the flag's help text. `add_arguments` adds one flag per field to a parser
the caller owns (only the CLI reads `sys.argv`); `settings_from_args` and `listen_from_args` read
the parsed namespace back. Every bad value raises `StandinSettingsError`, whose message is one
line naming the flag, for the CLI to print as it is.

`organizations` is always the full list of organizations served: given (`--organization`), or
else the one default organization, `demo`, made of `client_id` and `client_secret`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields

from .flag_values import REPEATABLE, converter, flag_for
from .har import Recording
from .organization_settings import (
    DEFAULT_ORGANIZATION_NAME,
    FORMAT,
    OrganizationSettings,
    demo_organizations,
)
from .setting_rules import StandinSettingsError, setting_problem

__all__ = [
    "DEFAULT_LISTEN",
    "OrganizationSettings",
    "StandinSettings",
    "StandinSettingsError",
    "add_arguments",
    "demo_organizations",
    "flag_for",
    "listen_from_args",
    "parse_listen",
    "settings_from_args",
]

from .faults import (
    API_FAULT_STATUSES,
    TOKEN_FAULT_MODES,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081
DEFAULT_LISTEN = f"{DEFAULT_HOST}:{DEFAULT_PORT}"


DEMO_CLIENT_ID = "demo-client"
DEMO_CLIENT_SECRET = "demo-secret"  # noqa: S105 - the stand-in's published demo secret
_DEMO_ORGANIZATION = OrganizationSettings(
    DEFAULT_ORGANIZATION_NAME, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
)
_MIXED_CREDENTIALS = "not together with --organization, which gives each organization's own"
_SHOWN_DEFAULTS = {
    "organizations": f"one organization, {DEFAULT_ORGANIZATION_NAME!r}, with --client-id and"
    " --client-secret",
    "replay": "none",
}


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class StandinSettings:
    """Everything that configures one stand-in; validated on construction."""

    client_id: str = field(
        default=DEMO_CLIENT_ID,
        metadata=_help("client id of the default organization (without --organization)"),
    )
    client_secret: str = field(
        default=DEMO_CLIENT_SECRET,
        repr=False,
        metadata=_help("client secret of the default organization (without --organization)"),
    )
    organizations: tuple[OrganizationSettings, ...] = field(
        default=(),
        metadata=_help(
            "serve this organization, with its own workspaces, tasks, batches and users; the"
            " secret is everything after the second colon (repeatable; replaces the default"
            " organization)"
        ),
    )
    token_lifetime_seconds: int = field(default=3600, metadata=_help("lifetime of issued tokens"))
    step_seconds: float = field(
        default=1.0,
        metadata=_help("time each task status step takes (queued, pre-processing, ...)"),
    )
    # Out of repr like the secret: the query string of a receiver's URL often carries a signature.
    webhook_url: str | None = field(
        default=None,
        repr=False,
        metadata=_help("POST the export webhook here when a task has been reviewed"),
    )
    webhook_timeout_seconds: float = field(
        default=10.0, metadata=_help("timeout of one webhook POST")
    )
    webhook_max_attempts: int = field(
        default=3, metadata=_help("webhook deliveries per task before it stays in review")
    )
    default_workspace_name: str = field(
        default="Default Workspace",
        metadata=_help("name of every organization's default workspace"),
    )
    workspaces: tuple[str, ...] = field(
        default=(),
        metadata=_help(
            "add a workspace with this name to every organization (repeatable; a name"
            " containing 'transcript' makes a transcript workspace)"
        ),
    )
    fail_token_requests: int = field(default=0, metadata=_help("fail the next N token requests"))
    fail_token_mode: str = field(
        default="invalid_client",
        metadata=_help("how token requests fail: invalid_client, 500 or hang"),
    )
    latency_seconds: float = field(
        default=0.0, metadata=_help("delay added to every token and API response")
    )
    fail_api_requests: int = field(default=0, metadata=_help("refuse the next N API calls"))
    fail_api_seconds: float = field(
        default=0.0, metadata=_help("refuse every API call for this long after start")
    )
    fail_api_status: int = field(
        default=503, metadata=_help("status of refused API calls: 429 or 503")
    )
    retry_after_seconds: int = field(
        default=1, metadata=_help("Retry-After sent with counted refusals")
    )
    replay: Recording | None = field(
        default=None,
        metadata=_help(
            "answer an API request recorded in this HAR 1.2 file (same method, same path and"
            " query byte for byte, order included) with the recorded response; several"
            " recordings answer in order, the last repeating; tokens are checked as usual and"
            " other requests simulated"
        ),
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            problem = setting_problem(f.name, getattr(self, f.name))
            if problem:
                raise StandinSettingsError(f"{flag_for(f.name)}: {problem}")
        # Frozen, so through object.__setattr__: from here on the field lists every organization.
        object.__setattr__(self, "organizations", self._served_organizations())

    def _served_organizations(self) -> tuple[OrganizationSettings, ...]:
        # The demo organization alone counts as "not given": so `dataclasses.replace` with a new
        # client id, on settings whose list was derived, derives it again instead of failing.
        if self.organizations in ((), (_DEMO_ORGANIZATION,)):
            default = OrganizationSettings(
                DEFAULT_ORGANIZATION_NAME, self.client_id, self.client_secret
            )
            return (default,)
        if self.client_id != DEMO_CLIENT_ID or self.client_secret != DEMO_CLIENT_SECRET:
            flag = "--client-id" if self.client_id != DEMO_CLIENT_ID else "--client-secret"
            raise StandinSettingsError(f"{flag}: {_MIXED_CREDENTIALS}")
        return self.organizations


EPILOG = (
    "Every /api call needs a token from POST /connect/token, and sees only the data of the"
    " organization it was issued for. Request bodies over 1 MiB are refused with 413. Paths"
    " under /_standin (no token) show and change the fault switches, revoke tokens and show"
    " webhook deliveries; see the README."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--listen` and one flag per `StandinSettings` field; unset flags keep the defaults.

    Also gives `parser` the stand-in's `EPILOG`, unless it has an epilog of its own.
    """
    parser.epilog = parser.epilog or EPILOG
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=None,
        help=f"address to listen on (default {DEFAULT_LISTEN})",
    )
    for f in fields(StandinSettings):
        repeatable = f.name in REPEATABLE
        default = _SHOWN_DEFAULTS.get(f.name) or shown_default(f.default)
        parser.add_argument(
            flag_for(f.name),
            dest=f.name,
            default=None,
            action="append" if repeatable else "store",
            metavar=metavar_for(f.name),
            help=f"{f.metadata['help']} (default {default})",
        )


# What a flag's value is, for --help, where the name does not say it (argparse would show the
# field's name in capitals).
_METAVARS = {
    "client_id": "ID",
    "client_secret": "SECRET",
    "default_workspace_name": "NAME",
    "workspaces": "WORKSPACE",
    "organizations": FORMAT,
    "replay": "FILE.har",
    "fail_token_mode": "|".join(TOKEN_FAULT_MODES),
    "fail_api_status": "|".join(str(status) for status in API_FAULT_STATUSES),
}


def metavar_for(name: str) -> str:
    """How `--help` names the value of field `name`'s flag."""
    if name in _METAVARS:
        return _METAVARS[name]
    if name.endswith("_seconds"):
        return "SECONDS"
    if name.endswith(("_requests", "_attempts")):
        return "N"
    return "URL" if name.endswith("_url") else "VALUE"


def shown_default(value: object) -> str:
    """A default as `--help` says it: `none` for no value, never Python's `None` or `()`."""
    # The demo secret is shown as it is: it is no secret (the README names it).
    return "none" if value is None or value == () else str(value)


def settings_from_args(ns: argparse.Namespace) -> StandinSettings:
    """The settings the parsed flags describe; raises `StandinSettingsError` on a bad value."""
    _refuse_mixed_credentials(ns)
    values: dict[str, object] = {}
    for f in fields(StandinSettings):
        raw = getattr(ns, f.name, None)
        if raw is None:
            continue
        values[f.name] = converter(f)(raw)
    return StandinSettings(**values)  # type: ignore[arg-type]


def _refuse_mixed_credentials(ns: argparse.Namespace) -> None:
    # Checked on the flags too: `--organization demo:demo-client:demo-secret --client-id x`
    # would otherwise pass for the default organization with a new client id.
    given = [flag for flag in ("client_id", "client_secret") if getattr(ns, flag, None)]
    if given and getattr(ns, "organizations", None):
        raise StandinSettingsError(f"{flag_for(given[0])}: {_MIXED_CREDENTIALS}")


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:8081`) as a host and port; raises `StandinSettingsError`."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise StandinSettingsError(f"--listen: {text!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN})")
    return host, int(port_text)


def listen_from_args(ns: argparse.Namespace) -> tuple[str, int]:
    """The host and port `--listen` names, or the default `127.0.0.1:8081`."""
    raw = getattr(ns, "listen", None)
    return parse_listen(DEFAULT_LISTEN if raw is None else raw)
