"""Settings of the SmartDocumentor stand-in, and the command-line flags that set them.

`StandinSettings` is the one frozen configuration object. Every field has a demo default, so
`StandinSettings()` is a usable stand-in, and each field is documented once, in its `help`
metadata, which is also the flag's help text. `add_arguments` adds one flag per field to a parser
the caller owns (only the CLI reads `sys.argv`); `settings_from_args` and `listen_from_args` read
the parsed namespace back. Every bad value raises `StandinSettingsError`, whose message is one
line naming the flag, for the CLI to print as it is.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from .faults import (
    API_FAULT_STATUSES,
    FAULT_FIELDS,
    TOKEN_FAULT_MODES,
    FaultError,
    check_fault_value,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081
DEFAULT_LISTEN = f"{DEFAULT_HOST}:{DEFAULT_PORT}"


class StandinSettingsError(ValueError):
    """A stand-in setting has a bad value; the message is one line and names the flag."""


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class StandinSettings:
    """Everything that configures one stand-in; validated on construction."""

    client_id: str = field(
        default="demo-client", metadata=_help("client id the token endpoint accepts")
    )
    client_secret: str = field(
        default="demo-secret",
        repr=False,
        metadata=_help("client secret the token endpoint accepts"),
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
        default="Default Workspace", metadata=_help("name of the organization's default workspace")
    )
    workspaces: tuple[str, ...] = field(
        default=(),
        metadata=_help(
            "add a workspace with this name (repeatable; a name containing 'transcript'"
            " makes a transcript workspace)"
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

    def __post_init__(self) -> None:
        for f in fields(self):
            problem = _problem(f.name, getattr(self, f.name))
            if problem:
                raise StandinSettingsError(f"{flag_for(f.name)}: {problem}")


def flag_for(name: str) -> str:
    """The command-line flag that sets field `name`."""
    return "--workspace" if name == "workspaces" else "--" + name.replace("_", "-")


def _text(value: object) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must not be empty"


def _positive_int(value: object) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "must be a whole number >= 1"


def _seconds(value: object, *, allow_zero: bool) -> str | None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and math.isfinite(value) and (value > 0 or (allow_zero and value == 0)):  # type: ignore[arg-type,operator]
        return None
    return "must be a number of seconds " + (">= 0" if allow_zero else "> 0")


def _webhook_url(value: object) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL"
    return None


def _workspaces(value: object) -> str | None:
    if not isinstance(value, tuple):
        return "must be a tuple of workspace names"
    if any(_text(name) for name in value):
        return "workspace names must not be empty"
    folded = [name.strip().casefold() for name in value]
    if len(set(folded)) != len(folded):
        return "workspace names must be unique"
    return None


_RULES: dict[str, Callable[[object], str | None]] = {
    "client_id": _text,
    "client_secret": _text,
    "token_lifetime_seconds": _positive_int,
    "step_seconds": lambda value: _seconds(value, allow_zero=True),
    "webhook_url": _webhook_url,
    "webhook_timeout_seconds": lambda value: _seconds(value, allow_zero=False),
    "webhook_max_attempts": _positive_int,
    "default_workspace_name": _text,
    "workspaces": _workspaces,
}


def _problem(name: str, value: object) -> str | None:
    """Why `value` is bad for field `name`, or None when it is fine."""
    if name in FAULT_FIELDS:
        try:
            check_fault_value(name, value)
        except FaultError as exc:
            return exc.message
        return None
    return _RULES[name](value)


def _parse_int(text: str) -> int:
    return int(text)


def _parse_float(text: str) -> float:
    return float(text)


def _converter(f: Field[Any]) -> Callable[[Any], object]:
    """How to turn the flag's raw argparse value back into the field's type."""
    if f.name == "workspaces":
        return tuple
    if f.name == "webhook_url":
        return lambda text: text.strip() or None
    if isinstance(f.default, bool) or not isinstance(f.default, int | float):
        return str
    return _parse_int if isinstance(f.default, int) else _parse_float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--listen` and one flag per `StandinSettings` field; unset flags keep the defaults."""
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=None,
        help=f"address to listen on (default {DEFAULT_LISTEN})",
    )
    for f in fields(StandinSettings):
        parser.add_argument(
            flag_for(f.name),
            dest=f.name,
            default=None,
            action="append" if f.name == "workspaces" else "store",
            metavar=metavar_for(f.name),
            help=f"{f.metadata['help']} (default {shown_default(f.default)})",
        )


# What a flag's value is, for --help, where the name does not say it (argparse would show the
# field's name in capitals).
_METAVARS = {
    "client_id": "ID",
    "client_secret": "SECRET",
    "default_workspace_name": "NAME",
    "workspaces": "NAME",
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
    values: dict[str, object] = {}
    for f in fields(StandinSettings):
        raw = getattr(ns, f.name, None)
        if raw is None:
            continue
        try:
            values[f.name] = _converter(f)(raw)
        except ValueError as exc:
            raise StandinSettingsError(f"{flag_for(f.name)}: {raw!r} is not a number") from exc
    return StandinSettings(**values)  # type: ignore[arg-type]


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
