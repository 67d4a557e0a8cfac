"""What makes each stand-in setting valid: one pure rule per field, returning the problem or None.

`StandinSettings` applies them on construction and raises `StandinSettingsError` with the flag's
name in front; the fault switches bring their own rules (`faults.check_fault_value`), shared with
the admin path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from urllib.parse import urlsplit

from .faults import FAULT_FIELDS, FaultError, check_fault_value
from .har import Recording
from .organization_settings import organizations_problem


class StandinSettingsError(ValueError):
    """A stand-in setting has a bad value; the message is one line and names the flag."""


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


def _recording(value: object) -> str | None:
    ok = value is None or isinstance(value, Recording)
    return None if ok else "must be a Recording (har.load_recording reads one)"


_RULES: dict[str, Callable[[object], str | None]] = {
    "client_id": _text,
    "client_secret": _text,
    "organizations": organizations_problem,
    "token_lifetime_seconds": _positive_int,
    "step_seconds": lambda value: _seconds(value, allow_zero=True),
    "webhook_url": _webhook_url,
    "webhook_timeout_seconds": lambda value: _seconds(value, allow_zero=False),
    "webhook_max_attempts": _positive_int,
    "default_workspace_name": _text,
    "workspaces": _workspaces,
    "replay": _recording,
}


def setting_problem(name: str, value: object) -> str | None:
    """Why `value` is bad for field `name`, or None when it is fine."""
    if name in FAULT_FIELDS:
        try:
            check_fault_value(name, value)
        except FaultError as exc:
            return exc.message
        return None
    return _RULES[name](value)
