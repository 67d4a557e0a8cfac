"""How the text of a stand-in flag becomes the value of its `StandinSettings` field.

One converter per kind of field; each raises `StandinSettingsError` with the one line the command
line prints, naming the flag. `--replay` reads and checks its HAR file here, at start-up, so a
malformed file stops the command before anything listens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field
from typing import Any

from .har import HarError, Recording, load_recording
from .organization_settings import OrganizationError, OrganizationSettings, parse_organization
from .setting_rules import StandinSettingsError

_SINGULAR_FLAGS = {"workspaces": "--workspace", "organizations": "--organization"}
REPEATABLE = frozenset(_SINGULAR_FLAGS)


def flag_for(name: str) -> str:
    """The command-line flag that sets field `name`."""
    return _SINGULAR_FLAGS.get(name) or "--" + name.replace("_", "-")


def _number(name: str, parse: Callable[[str], object]) -> Callable[[str], object]:
    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise StandinSettingsError(f"{flag_for(name)}: {text!r} is not a number") from exc

    return convert


def _organizations(values: list[str]) -> tuple[OrganizationSettings, ...]:
    try:
        return tuple(parse_organization(value) for value in values)
    except OrganizationError as exc:
        raise StandinSettingsError(f"{flag_for('organizations')}: {exc}") from exc


def _recording(path: str) -> Recording:
    try:
        return load_recording(path)
    except HarError as exc:
        # The file's name right after the flag, as it was typed: `--replay x.har: log...`.
        raise StandinSettingsError(f"{flag_for('replay')} {path}: {exc}") from exc


def converter(f: Field[Any]) -> Callable[[Any], object]:
    """How to turn the flag's raw argparse value back into the field's type."""
    special: dict[str, Callable[[Any], object]] = {
        "workspaces": tuple,
        "organizations": _organizations,
        "webhook_url": lambda text: text.strip() or None,
        "replay": _recording,
    }
    if f.name in special:
        return special[f.name]
    if isinstance(f.default, bool) or not isinstance(f.default, int | float):
        return str
    return _number(f.name, int if isinstance(f.default, int) else float)
