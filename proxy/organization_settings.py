"""The organizations of a configuration: one ``[organizations.NAME]`` table each.

A table holds an organization's credentials and, optionally, its own token-endpoint settings,
its own listen address and its own inbound keys; every other setting is shared. Without tables,
the single-organization settings make one organization named ``default``.

:mod:`proxy.config` calls :func:`read_tables` on the file's ``organizations`` value and
:func:`organization_of` on each table; the rules that need no I/O are pure functions here
(:func:`first_per_organization`, :func:`first_duplicate`). This module never imports
:mod:`proxy.config` at run time (config imports it): config hands in its own parsers for a
listen address and a URL, so each is parsed and refused in one place. No message shows a
value: a secret put in the wrong place must not end up on the terminal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from yarl import URL

if TYPE_CHECKING:
    from proxy.listen import Listen

ORGANIZATIONS: Final = "organizations"
DEFAULT_ORGANIZATION: Final = "default"
NAME_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_-]*")
TABLE_KEYS: Final = (
    "client_id",
    "client_secret_file",
    "scope",
    "client_auth",
    "token_url",
    "secret_expires",
    "listen",
    "inbound_keys_file",
)
# Only `load_config(organizations=...)` (the demo, with the stand-in's published demo secrets)
# may give the secret itself: a configuration file never holds it.
LITERAL_SECRET: Final = "client_secret"  # noqa: S105 (a setting's name, not a password)
# Top-level settings that belong to one organization: with tables, each table has its own.
PER_ORGANIZATION: Final = (
    "client_id",
    "client_secret_file",
    "client_secret",
    "secret_expires",
    "inbound_keys_file",
)

Tables = dict[str, dict[str, str]]


class TableError(ValueError):
    """An organization's table is wrong; the message names the table and the key."""


@dataclass(frozen=True)
class Organization:
    """One organization (tenant) on SmartDocumentor: its credentials, the token endpoint it
    asks, and how a request chooses it (an address of its own, keys of its own)."""

    name: str
    client_id: str
    # Exactly one of the two. The literal secret stays out of repr(), as in Config.
    client_secret: str | None = field(repr=False)
    client_secret_file: Path | None
    scope: str
    client_auth: Literal["post", "basic"]
    token_url: URL
    secret_expires: date | None
    # An address that serves this organization alone.
    listen: Listen | None = None
    # Whose holders act as this organization; on its own address, only these keys get in.
    inbound_keys_file: Path | None = None


def where(name: str) -> str:
    """How messages name an organization's table."""
    return f"[{ORGANIZATIONS}.{name}]"


def read_tables(value: object, *, literal_secrets: bool = False) -> Tables:
    """The ``organizations`` value of a parsed TOML document (or the demo's mapping) as
    ``{name: {key: string}}``, in the order given; raises :class:`TableError`."""
    if not isinstance(value, Mapping) or not value:
        raise TableError(
            f"[{ORGANIZATIONS}] must hold one table per organization, such as "
            f"[{ORGANIZATIONS}.acme] with client_id and client_secret_file"
        )
    return {name: _table(name, table, literal_secrets) for name, table in value.items()}


def _table(name: object, table: object, literal_secrets: bool) -> dict[str, str]:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise TableError(
            f"[{ORGANIZATIONS}.{name}]: an organization's name must match {NAME_PATTERN.pattern}"
        )
    if not isinstance(table, Mapping):
        raise TableError(f"{where(name)} must be a table of settings")
    strings: dict[str, str] = {}
    for key, setting in table.items():
        if key == LITERAL_SECRET and not literal_secrets:
            raise TableError(
                f"{where(name)} client_secret is not read from the config file; put the "
                "secret in a file and set client_secret_file"
            )
        if key not in TABLE_KEYS and key != LITERAL_SECRET:
            raise TableError(
                f"{where(name)}: unknown setting {key!r}; known: {', '.join(TABLE_KEYS)}"
            )
        if not isinstance(setting, str):
            raise TableError(f"{where(name)} {key} must be a string")
        strings[key] = setting
    _require_credentials(name, strings)
    return strings


def _require_credentials(name: str, table: Mapping[str, str]) -> None:
    if not table.get("client_id", "").strip():
        raise TableError(f"{where(name)} client_id is required: the organization's client id")
    secrets = [key for key in ("client_secret_file", LITERAL_SECRET) if table.get(key)]
    if not secrets:
        raise TableError(
            f"{where(name)} client_secret_file is required: the file holding the "
            "organization's client secret"
        )
    if len(secrets) > 1:
        raise TableError(f"{where(name)}: set either client_secret_file or client_secret")


@dataclass(frozen=True)
class Shared:
    """What every organization takes from the top-level settings unless its table says
    otherwise, and config's own rules, so that a bad value is refused in the same words."""

    scope: str
    client_auth: str
    token_url: URL
    # (label, value) -> the parsed value, or config's ConfigError naming the label.
    parse_listen: Callable[[str, str], Listen]
    parse_url: Callable[[str, str], URL]
    is_loopback_url: Callable[[URL], bool]


def organization_of(name: str, table: Mapping[str, str], shared: Shared) -> Organization:
    """One table (from :func:`read_tables`) as an organization; checks that its files are
    there. Raises :class:`TableError`, or config's own error from ``shared``'s parsers."""

    def fail(key: str, problem: str) -> TableError:
        return TableError(f"{where(name)} {key}: {problem}")

    def file(key: str) -> Path | None:
        if not table.get(key):
            return None
        path = Path(table[key]).expanduser()
        if not path.is_file():
            raise fail(key, f"{path.absolute()} is not a readable file")
        return path

    scope = table.get("scope", shared.scope).strip()
    client_auth = table.get("client_auth", shared.client_auth).strip().lower()
    if not scope:
        raise fail("scope", "must not be blank")
    if client_auth not in ("post", "basic"):
        raise fail("client_auth", f"{table['client_auth']!r} is not one of post, basic")
    try:
        expires = date.fromisoformat(table["secret_expires"]) if "secret_expires" in table else None
    except ValueError as exc:
        raise fail("secret_expires", "is not a date such as 2027-06-30") from exc
    token_url, listen = table.get("token_url"), table.get("listen")
    return Organization(
        name=name,
        client_id=table["client_id"].strip(),
        client_secret=table.get(LITERAL_SECRET),
        client_secret_file=file("client_secret_file"),
        scope=scope,
        client_auth=client_auth,  # type: ignore[arg-type]
        token_url=shared.parse_url(f"{where(name)} token_url", token_url)
        if token_url
        else shared.token_url,
        secret_expires=expires,
        listen=shared.parse_listen(f"{where(name)} listen", listen) if listen else None,
        inbound_keys_file=file("inbound_keys_file"),
    )


def first_per_organization(given: Iterable[str]) -> str | None:
    """With organization tables, a top-level setting of one organization is refused (which
    organization would it belong to?): the first such setting among those ``given``."""
    present = set(given)
    return next((name for name in PER_ORGANIZATION if name in present), None)


def first_duplicate(
    values: Iterable[tuple[str, Hashable]],
) -> tuple[str, str, Hashable] | None:
    """``(first owner, second owner, value)`` for the first value two owners share, among
    ``(owner, value)`` pairs: two organizations with one listen address, say."""
    seen: dict[Hashable, str] = {}
    for owner, value in values:
        if value in seen:
            return seen[value], owner, value
        seen[value] = owner
    return None
