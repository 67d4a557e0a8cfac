"""Fault switches: which failures the stand-in injects, as immutable state and pure rules.

Switches (start values come from the settings, live changes from the admin path):

- `fail_token_requests` + `fail_token_mode`: the next N token requests fail with
  `invalid_client`, with a bare 500, or `hang` (no answer until the switch is cleared or the
  stand-in shuts down).
- `latency_seconds`: delay added before every token and API response.
- `fail_api_requests` / `fail_api_seconds` + `fail_api_status` (429 or 503): the next N API calls,
  or every API call for that many seconds, are refused with `Retry-After`.
- `retry_after_seconds`: the `Retry-After` sent with counted refusals (a timed window sends the
  seconds it has left instead).

Every function here is pure; `fault_switch.FaultSwitch` holds the live state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

TOKEN_FAULT_MODES = ("invalid_client", "500", "hang")
API_FAULT_STATUSES = (429, 503)
MAX_LATENCY_SECONDS = 300.0
FAULT_FIELDS = (
    "fail_token_requests",
    "fail_token_mode",
    "latency_seconds",
    "fail_api_requests",
    "fail_api_seconds",
    "fail_api_status",
    "retry_after_seconds",
)


class FaultError(ValueError):
    """A fault switch was given a bad value; `field` names the switch."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class FaultState:
    """The switches at one moment; `fail_api_until` is a deadline on the monotonic clock."""

    fail_token_requests: int = 0
    fail_token_mode: str = "invalid_client"  # noqa: S105 - a mode name, not a credential
    latency_seconds: float = 0.0
    fail_api_requests: int = 0
    fail_api_until: float = 0.0
    fail_api_status: int = 503
    retry_after_seconds: int = 1


@dataclass(frozen=True)
class ApiFault:
    """One refused API call: the status to answer and its `Retry-After` in seconds."""

    status: int
    retry_after_seconds: int


def _count(value: object) -> int:
    # bool is an int in Python; a JSON `true` is not a count.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("must be a whole number >= 0")
    return value


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number of seconds >= 0")
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a number of seconds >= 0")
    return float(value)


def _latency(value: object) -> float:
    seconds = _seconds(value)
    if seconds > MAX_LATENCY_SECONDS:
        raise ValueError(f"must be at most {MAX_LATENCY_SECONDS:g} seconds")
    return seconds


def _mode(value: object) -> str:
    # Accept the JSON number 500 as well as the string "500".
    mode = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
    if mode not in TOKEN_FAULT_MODES:
        raise ValueError("must be one of " + ", ".join(TOKEN_FAULT_MODES))
    return mode


def _api_status(value: object) -> int:
    status = _count(int(value) if isinstance(value, str) and value.isdigit() else value)
    if status not in API_FAULT_STATUSES:
        raise ValueError("must be 429 or 503")
    return status


_RULES: dict[str, Callable[[object], object]] = {
    "fail_token_requests": _count,
    "fail_token_mode": _mode,
    "latency_seconds": _latency,
    "fail_api_requests": _count,
    "fail_api_seconds": _seconds,
    "fail_api_status": _api_status,
    "retry_after_seconds": _count,
}


def check_fault_value(name: str, value: object) -> object:
    """`value` normalised for switch `name`; raises `FaultError` if the name or value is bad."""
    rule = _RULES.get(name)
    if rule is None:
        raise FaultError(name, "is not a fault switch (known: " + ", ".join(FAULT_FIELDS) + ")")
    try:
        return rule(value)
    except ValueError as exc:
        raise FaultError(name, str(exc)) from exc


def with_changes(state: FaultState, changes: Mapping[str, object], now: float) -> FaultState:
    """`state` with `changes` applied; `fail_api_seconds` opens a refusal window from `now`."""
    values = {name: check_fault_value(name, value) for name, value in changes.items()}
    if "fail_api_seconds" in values:
        seconds = values.pop("fail_api_seconds")
        assert isinstance(seconds, float)
        values["fail_api_until"] = now + seconds if seconds > 0 else 0.0
    return replace(state, **values)  # type: ignore[arg-type]


def describe(state: FaultState, now: float) -> dict[str, object]:
    """The switches as the admin path shows them: the window as seconds left, not a deadline."""
    shown: dict[str, object] = {f.name: getattr(state, f.name) for f in fields(state)}
    del shown["fail_api_until"]
    shown["fail_api_seconds"] = round(max(0.0, state.fail_api_until - now), 3)
    return shown


def hang_armed(state: FaultState) -> bool:
    """True while token requests are still due to hang."""
    armed = state.fail_token_requests > 0
    return armed and state.fail_token_mode == "hang"  # noqa: S105 - a mode name, not a credential


def next_token_fault(state: FaultState) -> tuple[str | None, FaultState]:
    """The fault for the next token request (a mode, or None) and the state after it."""
    if state.fail_token_requests <= 0:
        return None, state
    return state.fail_token_mode, replace(state, fail_token_requests=state.fail_token_requests - 1)


def next_api_fault(state: FaultState, now: float) -> tuple[ApiFault | None, FaultState]:
    """The refusal for the next API call (or None) and the state after it.

    Counted refusals are used up first; the timed window refuses without being used up.
    """
    if state.fail_api_requests > 0:
        fault = ApiFault(state.fail_api_status, state.retry_after_seconds)
        return fault, replace(state, fail_api_requests=state.fail_api_requests - 1)
    if now < state.fail_api_until:
        remaining = max(1, math.ceil(state.fail_api_until - now))
        return ApiFault(state.fail_api_status, remaining), state
    return None, state
