"""The proxy's configuration: one contract, three sources.

Every option is declared once, in :data:`OPTIONS`. The command line, the environment and a TOML
file all feed the same table, with the precedence flag > environment > TOML > default, and
:func:`load_config` turns the merged strings into one frozen :class:`Config`. The README table
and ``config/smartdoc-proxy.example.toml`` are checked against :data:`OPTIONS` by a test, so the
three can't drift apart.

Several organizations come from ``[organizations.NAME]`` tables (:mod:`proxy.organization_settings`
says what a table may hold); the single-organization settings make one organization named
``default``. Either way, :attr:`Config.organizations` lists them.

This module never reads ``sys.argv`` or ``os.environ``: the command line passes them in, so
tests hand over plain dicts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
import stat
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypeVar

from yarl import URL

from proxy.listen import Listen
from proxy.options import (
    CHECK_OPTIONS,
    CONFIG_FILE,
    DEFAULT_UPSTREAM,
    OPTIONS,
    OPTIONS_BY_NAME,
    Option,
)
from proxy.organization_settings import (
    DEFAULT_ORGANIZATION,
    ORGANIZATIONS,
    PER_ORGANIZATION,
    Organization,
    Shared,
    TableError,
    Tables,
    first_duplicate,
    first_per_organization,
    organization_of,
    read_tables,
    where,
)

__all__ = ["CHECK_OPTIONS", "CONFIG_FILE", "DEFAULT_ORGANIZATION", "OPTIONS", "OPTIONS_BY_NAME",
           "Config", "ConfigError", "Listen", "Option", "Organization", "load_config"]  # fmt: skip

TOKEN_PATH = "/connect/token"  # noqa: S105 (a URL path, not a password)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
INSPECTOR_MODES = ("off", "loopback", "keys")
# More processes than this on one port is a typo, not a deployment.
MAX_WORKERS = 64
# A client's name in the keys file (proxy.access.NAME, which imports this module).
CLIENT_NAME = re.compile(r"[A-Za-z0-9._-]+")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
PORT_NUMBER = re.compile(r"-?[0-9]+")
N = TypeVar("N", int, float)
Fold = Callable[[str], str]
Raw = Mapping[str, str | None]  # option name -> the text that won, or None
Parse = Callable[[Raw, str], object]  # the merged texts and a field name -> the field's value


class ConfigError(Exception):
    """Settings are missing or invalid: one message for each, naming the option and how to fix
    it, in :attr:`messages`; ``str()`` gives them one a line."""

    def __init__(self, *messages: str) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Config:
    """Everything the proxy needs to run. Built only by :func:`load_config`."""

    listen: Listen
    upstream: URL
    token_url: URL
    client_id: str
    # Exactly one of the two is set. The literal secret stays out of repr() so that a logged
    # or printed Config never carries it.
    client_secret: str | None = field(repr=False)
    client_secret_file: Path | None
    scope: str
    client_auth: Literal["post", "basic"]
    upstream_connect_timeout_seconds: float
    upstream_read_timeout_seconds: float
    token_timeout_seconds: float
    replay_limit_bytes: int
    refresh_margin_seconds: float
    default_token_lifetime_seconds: float
    shutdown_grace_seconds: float
    log_format: Literal["text", "json"]
    log_level: str
    public_url: URL | None
    upstream_pool_size: int
    upstream_pool_timeout_seconds: float
    allow: tuple[IPNetwork, ...]
    inbound_keys_file: Path | None
    insecure_open: bool
    allow_insecure_upstream: bool
    tls_cert_file: Path | None
    tls_key_file: Path | None
    metrics_listen: Listen | None
    secret_expires: date | None
    # An extra CA bundle (absolute path) trusted for the upstream and the token endpoint.
    upstream_ca_file: Path | None
    client_header_timeout_seconds: float
    client_body_timeout_seconds: float
    client_body_total_timeout_seconds: float
    keepalive_timeout_seconds: float
    max_request_line_bytes: int
    max_header_bytes: int
    max_headers: int
    max_body_bytes: int
    max_requests_in_flight: int
    replay_budget_bytes: int
    upstream_keepalive_seconds: float
    # Who may open the inspector at /_proxy/, and what it keeps (proxy.inspector).
    inspector: Literal["off", "loopback", "keys"]
    inspector_clients: frozenset[str]
    inspect_bodies: bool
    inspect_exchanges: int
    # Processes serving the listen addresses (proxy.workers); 1 is this process alone.
    workers: int
    # What a client is told to do when no token can be had, instead of running `smartdoc-proxy
    # check`. No option sets it: the demo does, whose stand-in fails token requests on purpose.
    token_failure_advice: str | None = None
    # Every organization, in the order configured. The credential fields above are the
    # single-organization settings (empty with [organizations.*] tables); this is what to use.
    organizations: tuple[Organization, ...] = ()

    @property
    def public_origin(self) -> str | None:
        """Where clients reach the proxy, for rewriting redirects; ``None``: origin-relative."""
        return str(self.public_url.origin()) if self.public_url is not None else None

    @property
    def single_organization(self) -> bool:
        """One organization, ``default``, that the shared address serves without a choice:
        the single-organization settings. Output (metrics labels, readiness, ``check``) then
        stays as it was before organizations existed."""
        only = self.organizations[0] if len(self.organizations) == 1 else None
        return only is not None and only.name == DEFAULT_ORGANIZATION and only.listen is None

    @property
    def keeps_bodies(self) -> bool:
        """Are textual bodies kept for the inspector?"""
        return self.inspect_bodies and self.inspector != "off"

    def organization(self, name: str) -> Organization:
        """The organization called ``name``; :class:`KeyError` if there is none."""
        return {organization.name: organization for organization in self.organizations}[name]


def load_config(
    flags: Mapping[str, str | None],
    env: Mapping[str, str],
    *,
    only: Collection[str] | None = None,
    organizations: Mapping[str, Mapping[str, str]] | None = None,
) -> Config:
    """Merge flags, environment and the TOML file into a validated :class:`Config`.

    ``flags`` maps option names to the command line's values (``None`` when not given); ``env``
    is the process environment. ``only`` names the options a command reads (``check`` reads
    :data:`CHECK_OPTIONS`): the others keep their defaults whatever any source says. Raises
    :class:`ConfigError` with one message for each bad setting.
    """
    toml_values, problems, tables = _read_toml(flags.get("config") or env.get(CONFIG_FILE.env))
    if organizations is not None:
        # The demo's: unlike in a file, the secret itself may be given as client_secret.
        tables = _tables("", organizations, literal_secrets=True)
    raw: dict[str, str | None] = {}
    for option in OPTIONS:
        used = only is None or option.name in only
        raw[option.name] = _given(option, flags, env, toml_values) if used else option.default
    return _build(raw, problems, tables)


def _given(
    option: Option, flags: Mapping[str, str | None], env: Mapping[str, str], toml: dict[str, str]
) -> str | None:
    """The value from the first source that sets the option, else its default."""
    if option.name == "client_secret":
        # The environment is its only source, and an empty value counts: a secret variable set
        # to nothing is a mistake to report, not a secret to send.
        return env.get(option.env)
    for value in (flags.get(option.name), env.get(option.env) or None, toml.get(option.name)):
        if value is not None:
            return value
    return option.default


def _read_toml(path: str | None) -> tuple[dict[str, str], dict[str, str], Tables | None]:
    """The file's settings as strings, a message for each key that is refused, and its
    organization tables if it has any."""
    if not path:
        return {}, {}, None
    file = Path(path).expanduser().absolute()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{CONFIG_FILE.sources}: cannot read {file}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{CONFIG_FILE.sources}: {file} is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_FILE.sources}: {file} is not valid TOML: {exc}") from exc
    tables = _tables(f"{file}: ", data.pop(ORGANIZATIONS)) if ORGANIZATIONS in data else None
    for table in (tables or {}).values():
        # An organization's files too are relative to the file that names them.
        for key, setting in table.items():
            if key in OPTIONS_BY_NAME and OPTIONS_BY_NAME[key].is_path and setting:
                table[key] = _beside(file, setting)
    values, problems = {}, {}
    for key, value in data.items():
        try:
            values[key] = _toml_scalar(file, key, value)
        except ConfigError as exc:
            problems[key] = str(exc)
    return values, problems, tables


def _tables(source: str, value: object, *, literal_secrets: bool = False) -> Tables:
    try:
        return read_tables(value, literal_secrets=literal_secrets)
    except TableError as exc:
        raise ConfigError(f"{source}{exc}") from exc


def _toml_scalar(file: Path, key: str, value: Any) -> str:
    if key == "client_secret":
        raise ConfigError(
            f"{file}: client_secret is not read from the config file; put the secret in a file "
            "and set client_secret_file, or use SMARTDOC_CLIENT_SECRET"
        )
    if key not in OPTIONS_BY_NAME:
        known = ", ".join(name for name in OPTIONS_BY_NAME if name != "client_secret")
        raise ConfigError(f"{file}: unknown setting {key!r}; known: {known}")
    option = OPTIONS_BY_NAME[key]
    if option.switch and isinstance(value, bool):
        return "true" if value else "false"
    if option.repeatable and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{file}: {key} must be a string or a number")
    if option.is_path and value:
        # As most tools read their config files: relative to the file, not to wherever the
        # proxy happens to be started from.
        return _beside(file, str(value))
    return str(value)


def _beside(file: Path, path: str) -> str:
    return str(file.parent / Path(path).expanduser())


def _build(raw: Raw, problems: dict[str, str], tables: Tables | None = None) -> Config:
    """Every field parsed, or one :class:`ConfigError` with a message per bad setting (those
    the TOML file already got one for are not judged again); then the rules across fields."""
    values: dict[str, Any] = {}  # Config's keyword arguments, checked by Config(**values)
    if tables is not None:
        # With organization tables, the credentials are in the tables.
        values |= {"client_id": "", "client_secret": None, "client_secret_file": None}
        if (refused := _per_organization_setting(raw)) is not None:
            problems[refused[0]] = refused[1]
    for name, parse in _FIELDS.items():
        if name in problems or name in values:
            continue
        try:
            values[name] = parse(raw, name)
        except ConfigError as exc:
            problems[name] = str(exc)
    if problems:
        raise ConfigError(*problems.values())
    config = Config(**values)
    return _checked(replace(config, organizations=_organizations(config, tables)))


def _message(name: str, problem: str) -> str:
    """``name``: an option, or where a setting is in an organization's table."""
    option = OPTIONS_BY_NAME.get(name)
    return f"{option.sources if option else name}: {problem}"


def _fail(name: str, problem: str) -> ConfigError:
    return ConfigError(_message(name, problem))


def _required(raw: Raw, name: str) -> str:
    value = (raw[name] or "").strip()
    if not value:
        raise _fail(name, f"is required: {OPTIONS_BY_NAME[name].help}")
    return value


def _listen(name: str, value: str) -> Listen:
    host, sep, port = value.rpartition(":")
    # An IPv6 address must be bracketed: "::1" alone would read as host ":" and port 1.
    bracketed = host.startswith("[") and host.endswith("]")
    if ":" in host and not bracketed:
        raise _fail(name, f"{value!r}: write an IPv6 address in brackets, as [::1]:8080")
    host = host[1:-1] if bracketed else host
    if not sep or not host or not PORT_NUMBER.fullmatch(port):
        raise _fail(name, f"{value!r} is not HOST:PORT (for example 127.0.0.1:8080)")
    # Port 0 asks the system for any free port, as it does for every server.
    if not 0 <= int(port) <= 65535:
        raise _fail(name, f"{port} is not a port (a port is 1 to 65535, or 0 for any free one)")
    return Listen(host, int(port))


def _http_url(name: str, value: str) -> URL:
    try:
        url = URL(value)
    except ValueError as exc:
        raise _fail(name, "is not a URL") from exc
    # Checked first, so that no message below repeats a password someone put in the URL.
    if url.user or url.password:
        raise _fail(name, "must not carry credentials; use the client id and secret settings")
    if url.scheme not in ("http", "https") or not url.host:
        raise _fail(name, f"{value!r} must be an absolute http:// or https:// URL")
    return url


def _upstream(raw: Raw, name: str) -> URL:
    value = raw[name]
    url = _http_url(name, value or "")
    if url.raw_path not in ("", "/") or url.raw_query_string or url.raw_fragment:
        raise _fail(name, f"{value!r} must be an origin such as {DEFAULT_UPSTREAM} (no path)")
    return url.origin()


def _token_url(raw: Raw, name: str) -> URL | None:
    if raw[name]:
        return _http_url(name, raw[name] or "")
    # Derived from the upstream; a bad upstream is reported once, as the upstream's.
    with contextlib.suppress(ConfigError):
        return _upstream(raw, "upstream") / TOKEN_PATH[1:]
    return None


def _public_url(raw: Raw, name: str) -> URL | None:
    return _http_url(name, raw[name] or "").origin() if raw[name] else None


def _secret(raw: Raw, name: str) -> str | None:
    """The secret itself, unless a secret file is set (then the file is read, every time)."""
    return None if raw["client_secret_file"] else raw[name]


def _secret_file(raw: Raw, name: str) -> Path | None:
    """The secret file, once it is known to hold a secret; judges both ways to set one."""
    secret, secret_file = raw["client_secret"], raw[name]
    if secret_file:
        if secret:
            raise _fail(name, "set either the secret file or SMARTDOC_CLIENT_SECRET")
        return _secret_path(name, secret_file)
    if secret is None:
        raise _fail(name, "is required (or set SMARTDOC_CLIENT_SECRET)")
    if not secret.strip():
        raise _fail(
            "client_secret",
            "is set but empty; put the secret in it, or unset it and use --client-secret-file",
        )
    return None


def _secret_path(name: str, value: str) -> Path:
    # Read once here so that an empty or unreadable file stops the start, rather than
    # becoming a token request refused as invalid_client (the file is read again every time).
    path = Path(value).expanduser().absolute()
    try:
        secret = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(name, f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise _fail(name, f"{path} is not UTF-8 text") from exc
    if not secret.strip():
        raise _fail(name, f"{path} is empty; write the client secret into it")
    return path


def _choice(raw: Raw, name: str, choices: tuple[str, ...], fold: Fold = str.lower) -> str:
    value = fold(_required(raw, name))
    if value not in choices:
        raise _fail(name, f"{raw[name]!r} is not one of {', '.join(choices)}")
    return value


def _one_of(choices: tuple[str, ...], fold: Fold = str.lower) -> Parse:
    return lambda raw, name: _choice(raw, name, choices, fold)


def _number(raw: Raw, name: str, kind: type[N], minimum: float | None = None) -> N:
    text = _required(raw, name)
    try:
        value = kind(text)
    except ValueError as exc:
        raise _fail(name, f"{text!r} is not a {'whole ' if kind is int else ''}number") from exc
    too_small = value <= 0 if minimum is None else value < minimum
    if too_small or not math.isfinite(value):
        bound = "positive" if minimum is None else f"at least {minimum:g}"
        raise _fail(name, f"must be {bound}, not {text}")
    return value


def _seconds(raw: Raw, name: str) -> float:
    return _number(raw, name, float)


def _seconds_or_zero(raw: Raw, name: str) -> float:
    return _number(raw, name, float, minimum=0)


def _count(raw: Raw, name: str) -> int:
    return _number(raw, name, int)


def _workers(raw: Raw, name: str) -> int:
    count = _count(raw, name)
    if count > MAX_WORKERS:
        raise _fail(name, f"{count} is more workers than the {MAX_WORKERS} allowed")
    return count


def _count_or_zero(raw: Raw, name: str) -> int:
    return _number(raw, name, int, minimum=0)


def _networks(raw: Raw, name: str) -> tuple[IPNetwork, ...]:
    networks = []
    for item in (raw[name] or "").split(","):
        if not item.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError as exc:
            raise _fail(name, f"{item.strip()!r} is not a network such as 10.0.0.0/8") from exc
    return tuple(networks)


def _names(raw: Raw, name: str) -> frozenset[str]:
    names = frozenset(item.strip() for item in (raw[name] or "").split(",") if item.strip())
    for each in sorted(names):
        if not CLIENT_NAME.fullmatch(each):
            raise _fail(name, f"{each!r} is not a client name from the keys file")
    return names


def _file(raw: Raw, name: str) -> Path | None:
    value = raw[name]
    if not value:
        return None
    path = Path(value).expanduser().absolute()
    if not path.is_file():
        raise _fail(name, f"{path} is not a readable file")
    return path


def _readable_file(raw: Raw, name: str) -> Path | None:
    """The named file as an absolute path, or ``None`` when unset; it must open for reading."""
    value = raw[name]
    if not value:
        return None
    path = Path(value).absolute()
    try:
        # Checked before opening: opening a FIFO would wait for a writer.
        if not stat.S_ISREG(path.stat().st_mode):
            raise _fail(name, f"{path} is not a readable file: not a regular file")
        path.open("rb").close()
    except OSError as exc:
        raise _fail(name, f"{path} is not a readable file: {exc.strerror}") from exc
    return path


def _switch(raw: Raw, name: str) -> bool:
    value = (raw[name] or "").strip().lower()
    if value not in TRUE + FALSE:
        raise _fail(name, f"{raw[name]!r} is not true or false")
    return value in TRUE


def _address(raw: Raw, name: str) -> Listen | None:
    return _listen(name, raw[name] or "") if raw[name] else None


def _date(raw: Raw, name: str) -> date | None:
    value = (raw[name] or "").strip()
    try:
        return date.fromisoformat(value) if value else None
    except ValueError as exc:
        raise _fail(name, f"{value!r} is not a date such as 2027-06-30") from exc


# How each Config field is read from the merged strings, in the order problems are reported.
_FIELDS: dict[str, Parse] = {
    "listen": lambda raw, name: _listen(name, _required(raw, name)),
    "upstream": _upstream,
    "token_url": _token_url,
    "client_id": _required,
    "client_secret": _secret,
    "client_secret_file": _secret_file,
    "scope": _required,
    "client_auth": _one_of(("post", "basic")),
    "upstream_connect_timeout_seconds": _seconds,
    "upstream_read_timeout_seconds": _seconds,
    "token_timeout_seconds": _seconds,
    "replay_limit_bytes": _count_or_zero,
    "refresh_margin_seconds": _seconds_or_zero,
    "default_token_lifetime_seconds": _seconds,
    "shutdown_grace_seconds": _seconds_or_zero,
    "log_format": _one_of(("text", "json")),
    "log_level": _one_of(LOG_LEVELS, fold=str.upper),
    "public_url": _public_url,
    "upstream_pool_size": _count,
    "upstream_pool_timeout_seconds": _seconds,
    "allow": _networks,
    "inbound_keys_file": _file,
    "insecure_open": _switch,
    "allow_insecure_upstream": _switch,
    "tls_cert_file": _file,
    "tls_key_file": _file,
    "metrics_listen": _address,
    "secret_expires": _date,
    "upstream_ca_file": _readable_file,
    "client_header_timeout_seconds": _seconds,
    "client_body_timeout_seconds": _seconds,
    "client_body_total_timeout_seconds": _seconds,
    "keepalive_timeout_seconds": _seconds,
    "max_request_line_bytes": _count,
    "max_header_bytes": _count,
    "max_headers": _count,
    "max_body_bytes": _count,
    "max_requests_in_flight": _count,
    # 0: no body is kept for a resend, every body streams.
    "replay_budget_bytes": _count_or_zero,
    "upstream_keepalive_seconds": _seconds,
    "inspector": _one_of(INSPECTOR_MODES),
    "inspector_clients": _names,
    "inspect_bodies": _switch,
    "inspect_exchanges": _count,
    "workers": _workers,
}


def _inspector_ok(config: Config) -> str | None:
    if config.inspector == "keys" and not (config.inbound_keys_file and config.inspector_clients):
        return _message(
            "inspector",
            "keys admits the clients named in --inspector-clients, by their key from "
            "--inbound-keys-file: set both, or use loopback",
        )
    if config.inspector_clients and config.inspector != "keys":
        return _message(
            "inspector_clients", "names who may open the inspector with --inspector keys"
        )
    return None


def _is_loopback_url(url: URL) -> bool:
    return Listen(url.host or "", 0).is_loopback


def _checked(config: Config) -> Config:
    """Rules across settings: what may not be combined, and what must not run by accident.
    Judged only once every field is valid, and all reported together."""
    problems = [
        _tls_pair(config),
        *_in_clear(config),
        _open_door(config),
        _organizations_ok(config),
        _inspector_ok(config),
    ]
    if any(problems):
        raise ConfigError(*filter(None, problems))
    return config


def _tls_pair(config: Config) -> str | None:
    if (config.tls_cert_file is None) == (config.tls_key_file is None):
        return None
    return _message("tls_cert_file", "set both --tls-cert-file and --tls-key-file, or neither")


def _in_clear(config: Config) -> list[str | None]:
    if config.allow_insecure_upstream:
        return []
    # The token and the secret would cross the network in clear.
    return [
        _message(
            name,
            f"{url} is plain http:// beyond loopback: the token and the secret would travel in "
            "clear; use https://, or --allow-insecure-upstream",
        )
        for name, url in (("upstream", config.upstream), ("token_url", config.token_url))
        if url.scheme == "http" and not _is_loopback_url(url)
    ]


def _open_door(config: Config) -> str | None:
    # With several organizations the shared address always wants a key: it is never open.
    shared_open = config.single_organization and config.organizations[0].inbound_keys_file is None
    open_door = not config.allow and shared_open
    if config.listen.is_loopback or not open_door or config.insecure_open:
        return None
    return _message(
        "listen",
        f"{config.listen} is beyond loopback, and with neither an allow-list nor keys anyone who "
        "reaches it acts as the organization: admit networks with --allow CIDR, require keys "
        "with --inbound-keys-file PATH, or accept it with --insecure-open",
    )


def _per_organization_setting(raw: Raw) -> tuple[str, str] | None:
    """A top-level setting that belongs in each organization's table, and what to say."""
    name = first_per_organization(name for name in PER_ORGANIZATION if raw[name])
    if name is None:
        return None
    # The secret itself goes in a file of each organization's own.
    own = "client_secret_file" if name == "client_secret" else name
    return name, _message(
        name,
        f"not together with [{ORGANIZATIONS}.*] tables: each organization has its own "
        f"{own} in its table; remove this one",
    )


def _organizations(config: Config, tables: Tables | None) -> tuple[Organization, ...]:
    if tables is None:
        # The single-organization settings: one organization, named default.
        return (
            Organization(
                DEFAULT_ORGANIZATION,
                config.client_id,
                config.client_secret,
                config.client_secret_file,
                config.scope,
                config.client_auth,
                config.token_url,
                config.secret_expires,
                inbound_keys_file=config.inbound_keys_file,
            ),
        )
    try:
        return tuple(
            organization_of(name, table, _shared(config)) for name, table in tables.items()
        )
    except TableError as exc:
        raise ConfigError(str(exc)) from exc


def _shared(config: Config) -> Shared:
    return Shared(
        config.scope,
        config.client_auth,
        config.token_url,
        parse_listen=lambda label, value: _listen(label, value),
        parse_url=_http_url,
        is_loopback_url=_is_loopback_url,
    )


def _organizations_ok(config: Config) -> str | None:
    if config.single_organization:
        return None  # the top-level rules above have judged its settings already
    try:
        _check_organizations(config, _shared(config))
    except TableError as exc:
        return str(exc)
    return None


def _check_organizations(config: Config, shared: Shared) -> None:
    """Rules across organizations, on a loaded configuration: an address of its own each,
    and each one's token endpoint and address held to the rules of the top-level ones."""
    named = [(f"{where(o.name)} listen", o.listen) for o in config.organizations if o.listen]
    addresses = [(OPTIONS_BY_NAME["listen"].sources, config.listen)]
    if config.metrics_listen is not None:
        addresses.append((OPTIONS_BY_NAME["metrics_listen"].sources, config.metrics_listen))
    # Port 0 picks a free port for each: never a clash.
    taken = [(owner, listen) for owner, listen in addresses + named if listen.port != 0]
    clash = first_duplicate(taken) if named else None
    if clash is not None:
        first, second, listen = clash
        raise TableError(
            f"{second}: {listen} is the address of {first} already; every organization needs "
            "a listen address of its own"
        )
    for organization in config.organizations:
        _check_organization(config, organization, shared)


def _check_organization(config: Config, organization: Organization, shared: Shared) -> None:
    at, url = where(organization.name), organization.token_url
    cleartext = url.scheme == "http" and not shared.is_loopback_url(url)
    if cleartext and not config.allow_insecure_upstream:
        raise TableError(
            f"{at} token_url: {url} is plain http:// beyond loopback: the secret would travel "
            "in clear; use https://, or --allow-insecure-upstream"
        )
    listen = organization.listen
    open_door = not config.allow and organization.inbound_keys_file is None
    if listen and not listen.is_loopback and open_door and not config.insecure_open:
        raise TableError(
            f"{at} listen: {listen} is beyond loopback, and with neither an allow-list nor "
            f"keys anyone who reaches it acts as {organization.name}: admit networks with "
            "--allow CIDR, give the organization an inbound_keys_file, or accept it with "
            "--insecure-open"
        )
