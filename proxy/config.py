"""The proxy's configuration: one contract, three sources.

Every option is declared once, in :data:`OPTIONS`. The command line, the environment and a TOML
file all feed the same table, with the precedence flag > environment > TOML > default, and
:func:`load_config` turns the merged strings into one frozen :class:`Config`. The README table
and ``config/smartdoc-proxy.example.toml`` are checked against :data:`OPTIONS` by a test, so the
three can't drift apart.

This module never reads ``sys.argv`` or ``os.environ``: the command line passes them in, so
tests hand over plain dicts.
"""

from __future__ import annotations

import ipaddress
import math
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from yarl import URL

from proxy.options import CONFIG_FILE, DEFAULT_UPSTREAM, OPTIONS, OPTIONS_BY_NAME, Option

__all__ = ["CONFIG_FILE", "OPTIONS", "OPTIONS_BY_NAME", "Config", "ConfigError", "Listen",
           "Option", "load_config"]  # fmt: skip

TOKEN_PATH = "/connect/token"  # noqa: S105 (a URL path, not a password)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
INSPECTOR_MODES = ("off", "loopback", "keys")
# A client's name in the keys file (proxy.access.NAME, which imports this module).
CLIENT_NAME = re.compile(r"[A-Za-z0-9._-]+")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
N = TypeVar("N", int, float)


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the option and how to fix it."""


class Listen(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


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
    # Who may open the inspector at /_proxy/, and what it keeps (proxy.inspector).
    inspector: Literal["off", "loopback", "keys"]
    inspector_clients: frozenset[str]
    inspect_bodies: bool
    inspect_exchanges: int

    @property
    def public_origin(self) -> str | None:
        """Where clients reach the proxy, for rewriting redirects; ``None``: origin-relative."""
        return str(self.public_url.origin()) if self.public_url is not None else None

    @property
    def keeps_bodies(self) -> bool:
        """Are textual bodies kept for the inspector?"""
        return self.inspect_bodies and self.inspector != "off"


def load_config(flags: Mapping[str, str | None], env: Mapping[str, str]) -> Config:
    """Merge flags, environment and the TOML file into a validated :class:`Config`.

    ``flags`` maps option names to the command line's values (``None`` when not given); ``env``
    is the process environment. Raises :class:`ConfigError` naming the first bad option.
    """
    toml_values = _read_toml(flags.get("config") or env.get(CONFIG_FILE.env))
    raw: dict[str, str | None] = {}
    for option in OPTIONS:
        value = flags.get(option.name)
        if value is None:
            value = env.get(option.env) or None
        if value is None:
            value = toml_values.get(option.name)
        raw[option.name] = option.default if value is None else value
    return _build(raw)


def _read_toml(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{CONFIG_FILE.sources}: cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_FILE.sources}: {path} is not valid TOML: {exc}") from exc
    return {key: _toml_scalar(path, key, value) for key, value in data.items()}


def _toml_scalar(path: str, key: str, value: Any) -> str:
    if key == "client_secret":
        raise ConfigError(
            f"{path}: client_secret is not read from the config file; put the secret in a file "
            "and set client_secret_file, or use SMARTDOC_CLIENT_SECRET"
        )
    if key not in OPTIONS_BY_NAME:
        known = ", ".join(name for name in OPTIONS_BY_NAME if name != "client_secret")
        raise ConfigError(f"{path}: unknown setting {key!r}; known: {known}")
    option = OPTIONS_BY_NAME[key]
    if option.switch and isinstance(value, bool):
        return "true" if value else "false"
    if option.repeatable and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{path}: {key} must be a string or a number")
    return str(value)


def _build(raw: Mapping[str, str | None]) -> Config:
    return _checked(_parse(raw))


def _parse(raw: Mapping[str, str | None]) -> Config:
    upstream = _upstream(raw["upstream"])
    token_url, public_url = raw["token_url"], raw["public_url"]
    secret, secret_file = _secret(raw)
    return Config(
        listen=_listen(_required(raw, "listen")),
        upstream=upstream,
        token_url=_http_url("token_url", token_url) if token_url else upstream / TOKEN_PATH[1:],
        client_id=_required(raw, "client_id"),
        client_secret=secret,
        client_secret_file=secret_file,
        scope=_required(raw, "scope"),
        client_auth=_choice(raw, "client_auth", ("post", "basic")),  # type: ignore[arg-type]
        upstream_connect_timeout_seconds=_number(raw, "upstream_connect_timeout_seconds", float),
        upstream_read_timeout_seconds=_number(raw, "upstream_read_timeout_seconds", float),
        token_timeout_seconds=_number(raw, "token_timeout_seconds", float),
        replay_limit_bytes=_number(raw, "replay_limit_bytes", int, minimum=0),
        refresh_margin_seconds=_number(raw, "refresh_margin_seconds", float, minimum=0),
        default_token_lifetime_seconds=_number(raw, "default_token_lifetime_seconds", float),
        shutdown_grace_seconds=_number(raw, "shutdown_grace_seconds", float, minimum=0),
        log_format=_choice(raw, "log_format", ("text", "json")),  # type: ignore[arg-type]
        log_level=_choice(raw, "log_level", LOG_LEVELS, fold=str.upper),
        public_url=_http_url("public_url", public_url).origin() if public_url else None,
        upstream_pool_size=_number(raw, "upstream_pool_size", int),
        upstream_pool_timeout_seconds=_number(raw, "upstream_pool_timeout_seconds", float),
        allow=_networks(raw["allow"]),
        inbound_keys_file=_file(raw, "inbound_keys_file"),
        insecure_open=_switch(raw, "insecure_open"),
        allow_insecure_upstream=_switch(raw, "allow_insecure_upstream"),
        tls_cert_file=_file(raw, "tls_cert_file"),
        tls_key_file=_file(raw, "tls_key_file"),
        metrics_listen=_listen(raw["metrics_listen"], "metrics_listen")
        if raw["metrics_listen"]
        else None,
        secret_expires=_date(raw, "secret_expires"),
        upstream_ca_file=_readable_file(raw, "upstream_ca_file"),
        inspector=_choice(raw, "inspector", INSPECTOR_MODES),  # type: ignore[arg-type]
        inspector_clients=_names(raw, "inspector_clients"),
        inspect_bodies=_switch(raw, "inspect_bodies"),
        inspect_exchanges=_number(raw, "inspect_exchanges", int),
    )


def _fail(name: str, problem: str) -> ConfigError:
    return ConfigError(f"{OPTIONS_BY_NAME[name].sources}: {problem}")


def _required(raw: Mapping[str, str | None], name: str) -> str:
    value = (raw[name] or "").strip()
    if not value:
        raise _fail(name, f"is required: {OPTIONS_BY_NAME[name].help}")
    return value


def _listen(value: str, name: str = "listen") -> Listen:
    host, sep, port = value.rpartition(":")
    # An IPv6 address must be bracketed: "::1" alone would read as host ":" and port 1.
    bracketed = host.startswith("[") and host.endswith("]")
    if ":" in host and not bracketed:
        raise _fail(name, f"{value!r}: write an IPv6 address in brackets, as [::1]:8080")
    host = host[1:-1] if bracketed else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise _fail(name, f"{value!r} is not HOST:PORT (for example 127.0.0.1:8080)")
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


def _upstream(value: str | None) -> URL:
    url = _http_url("upstream", value or "")
    if url.raw_path not in ("", "/") or url.raw_query_string or url.raw_fragment:
        raise _fail("upstream", f"{value!r} must be an origin such as {DEFAULT_UPSTREAM} (no path)")
    return url.origin()


def _secret(raw: Mapping[str, str | None]) -> tuple[str | None, Path | None]:
    secret, secret_file = raw["client_secret"], raw["client_secret_file"]
    if secret and secret_file:
        raise _fail("client_secret_file", "set either the secret file or SMARTDOC_CLIENT_SECRET")
    if secret_file:
        path = Path(secret_file)
        if not path.is_file():
            raise _fail("client_secret_file", f"{secret_file} is not a readable file")
        return None, path
    if not secret:
        raise _fail("client_secret_file", "is required (or set SMARTDOC_CLIENT_SECRET)")
    return secret, None


def _choice(
    raw: Mapping[str, str | None],
    name: str,
    choices: tuple[str, ...],
    fold: Callable[[str], str] = str.lower,
) -> str:
    value = fold(_required(raw, name))
    if value not in choices:
        raise _fail(name, f"{raw[name]!r} is not one of {', '.join(choices)}")
    return value


def _number(
    raw: Mapping[str, str | None], name: str, kind: type[N], minimum: float | None = None
) -> N:
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


def _networks(value: str | None) -> tuple[IPNetwork, ...]:
    networks = []
    for item in (value or "").split(","):
        if not item.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError as exc:
            raise _fail("allow", f"{item.strip()!r} is not a network such as 10.0.0.0/8") from exc
    return tuple(networks)


def _names(raw: Mapping[str, str | None], name: str) -> frozenset[str]:
    names = frozenset(item.strip() for item in (raw[name] or "").split(",") if item.strip())
    for each in sorted(names):
        if not CLIENT_NAME.fullmatch(each):
            raise _fail(name, f"{each!r} is not a client name from the keys file")
    return names


def _file(raw: Mapping[str, str | None], name: str) -> Path | None:
    value = raw[name]
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise _fail(name, f"{path.absolute()} is not a readable file")
    return path


def _readable_file(raw: Mapping[str, str | None], name: str) -> Path | None:
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


def _switch(raw: Mapping[str, str | None], name: str) -> bool:
    value = (raw[name] or "").strip().lower()
    if value not in TRUE + FALSE:
        raise _fail(name, f"{raw[name]!r} is not true or false")
    return value in TRUE


def _date(raw: Mapping[str, str | None], name: str) -> date | None:
    value = (raw[name] or "").strip()
    try:
        return date.fromisoformat(value) if value else None
    except ValueError as exc:
        raise _fail(name, f"{value!r} is not a date such as 2027-06-30") from exc


def _check_inspector(config: Config) -> None:
    if config.inspector == "keys" and not (config.inbound_keys_file and config.inspector_clients):
        raise _fail(
            "inspector",
            "keys admits the clients named in --inspector-clients, by their key from "
            "--inbound-keys-file: set both, or use loopback",
        )
    if config.inspector_clients and config.inspector != "keys":
        raise _fail("inspector_clients", "names who may open the inspector with --inspector keys")


def _is_loopback_url(url: URL) -> bool:
    return Listen(url.host or "", 0).is_loopback


def _checked(config: Config) -> Config:
    """Rules across settings: what may not be combined, and what must not run by accident."""
    if (config.tls_cert_file is None) != (config.tls_key_file is None):
        raise _fail("tls_cert_file", "set both --tls-cert-file and --tls-key-file, or neither")
    if not config.allow_insecure_upstream:
        for name, url in (("upstream", config.upstream), ("token_url", config.token_url)):
            if url.scheme == "http" and not _is_loopback_url(url):
                # The token and the secret would cross the network in clear.
                raise _fail(
                    name,
                    f"{url} is plain http:// beyond loopback: the token and the secret would "
                    "travel in clear; use https://, or --allow-insecure-upstream",
                )
    _check_inspector(config)
    open_door = not config.allow and config.inbound_keys_file is None
    if not config.listen.is_loopback and open_door and not config.insecure_open:
        raise _fail(
            "listen",
            f"{config.listen} is beyond loopback, and with neither an allow-list nor keys anyone "
            "who reaches it acts as the organization: admit networks with --allow CIDR, require "
            "keys with --inbound-keys-file PATH, or accept it with --insecure-open",
        )
    return config
