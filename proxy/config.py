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
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from yarl import URL

DEFAULT_UPSTREAM = "https://cloud.smartdocumentor.net"
TOKEN_PATH = "/connect/token"  # noqa: S105 (a URL path, not a password)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
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

    @property
    def public_origin(self) -> str | None:
        """Where clients reach the proxy, for rewriting redirects; ``None``: origin-relative."""
        return str(self.public_url.origin()) if self.public_url is not None else None


@dataclass(frozen=True)
class Option:
    """One setting: its TOML key (= Config field), flag, environment variable and default."""

    name: str
    env: str
    default: str | None
    help: str
    flag: str | None = None
    metavar: str = "VALUE"

    @property
    def sources(self) -> str:
        """How to set it, for error messages."""
        names = [self.flag] if self.flag else []
        return " / ".join([*names, self.env])


OPTIONS: tuple[Option, ...] = (
    Option("listen", "SMARTDOC_PROXY_LISTEN", "127.0.0.1:8080",
           "address and port to listen on", "--listen", "HOST:PORT"),
    Option("upstream", "SMARTDOC_UPSTREAM", DEFAULT_UPSTREAM,
           "origin of the SmartDocumentor API; the only place requests are forwarded to",
           "--upstream", "URL"),
    Option("token_url", "SMARTDOC_TOKEN_URL", None,
           "OAuth2 token endpoint (default: upstream + /connect/token)", "--token-url", "URL"),
    Option("client_id", "SMARTDOC_CLIENT_ID", None,
           "the organization's client id (required)", "--client-id", "ID"),
    Option("client_secret_file", "SMARTDOC_CLIENT_SECRET_FILE", None,
           "file holding the client secret, re-read for every token request",
           "--client-secret-file", "PATH"),
    Option("client_secret", "SMARTDOC_CLIENT_SECRET", None,
           "the client secret itself (environment only: a flag would show in ps)"),
    Option("scope", "SMARTDOC_SCOPE", "WebAPI", "OAuth2 scope to request", "--scope", "SCOPE"),
    Option("client_auth", "SMARTDOC_CLIENT_AUTH", "post",
           "how the client authenticates: post (form body) or basic (HTTP Basic)",
           "--client-auth", "post|basic"),
    Option("upstream_connect_timeout_seconds", "SMARTDOC_UPSTREAM_CONNECT_TIMEOUT_SECONDS", "10",
           "seconds to wait for a new connection to the upstream to open (then 503)",
           "--upstream-connect-timeout-seconds", "SECONDS"),
    Option("upstream_read_timeout_seconds", "SMARTDOC_UPSTREAM_READ_TIMEOUT_SECONDS", "60",
           "seconds to wait for upstream data before giving up (then 504)",
           "--upstream-read-timeout-seconds", "SECONDS"),
    Option("token_timeout_seconds", "SMARTDOC_TOKEN_TIMEOUT_SECONDS", "10",
           "seconds a token request may take (then 503)", "--token-timeout-seconds", "SECONDS"),
    Option("replay_limit_bytes", "SMARTDOC_REPLAY_LIMIT_BYTES", "1048576",
           "request bodies up to this size are kept so they can be resent after a 401",
           "--replay-limit-bytes", "BYTES"),
    Option("refresh_margin_seconds", "SMARTDOC_REFRESH_MARGIN_SECONDS", "300",
           "refresh the token this long before it expires (at most half its lifetime)",
           "--refresh-margin-seconds", "SECONDS"),
    Option("default_token_lifetime_seconds", "SMARTDOC_DEFAULT_TOKEN_LIFETIME_SECONDS", "3600",
           "lifetime assumed when the token endpoint sends no expires_in",
           "--default-token-lifetime-seconds", "SECONDS"),
    Option("shutdown_grace_seconds", "SMARTDOC_SHUTDOWN_GRACE_SECONDS", "10",
           "on SIGTERM/SIGINT, how long requests in flight may take to finish",
           "--shutdown-grace-seconds", "SECONDS"),
    Option("log_format", "SMARTDOC_LOG_FORMAT", "text", "log format: text or json",
           "--log-format", "text|json"),
    Option("log_level", "SMARTDOC_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR",
           "--log-level", "LEVEL"),
    Option("public_url", "SMARTDOC_PROXY_PUBLIC_URL", None,
           "origin clients reach the proxy at; upstream redirects point there (default: "
           "origin-relative, never from the client's Host)", "--public-url", "URL"),
    Option("upstream_pool_size", "SMARTDOC_UPSTREAM_POOL_SIZE", "100",
           "connections to the upstream at most, in use or idle", "--upstream-pool-size", "N"),
    Option("upstream_pool_timeout_seconds", "SMARTDOC_UPSTREAM_POOL_TIMEOUT_SECONDS", "10",
           "seconds a request may wait for a free upstream connection (then 503)",
           "--upstream-pool-timeout-seconds", "SECONDS"),
    Option("client_header_timeout_seconds", "SMARTDOC_PROXY_CLIENT_HEADER_TIMEOUT_SECONDS", "10",
           "seconds a client may take to send a request's headers (then 408, and closed)",
           "--client-header-timeout-seconds", "SECONDS"),
    Option("client_body_timeout_seconds", "SMARTDOC_PROXY_CLIENT_BODY_TIMEOUT_SECONDS", "30",
           "seconds a request body may stall between two reads (then 408, and closed)",
           "--client-body-timeout-seconds", "SECONDS"),
    Option("client_body_total_timeout_seconds",
           "SMARTDOC_PROXY_CLIENT_BODY_TOTAL_TIMEOUT_SECONDS", "300",
           "seconds a whole request body may take (then 408, and closed)",
           "--client-body-total-timeout-seconds", "SECONDS"),
    Option("keepalive_timeout_seconds", "SMARTDOC_PROXY_KEEPALIVE_TIMEOUT_SECONDS", "75",
           "seconds an idle client keep-alive connection is kept open",
           "--keepalive-timeout-seconds", "SECONDS"),
    Option("max_request_line_bytes", "SMARTDOC_PROXY_MAX_REQUEST_LINE_BYTES", "8190",
           "longest request line, method and target included (then 414)",
           "--max-request-line-bytes", "BYTES"),
    Option("max_header_bytes", "SMARTDOC_PROXY_MAX_HEADER_BYTES", "65536",
           "request line and headers together at most (then 431)", "--max-header-bytes",
           "BYTES"),
    Option("max_headers", "SMARTDOC_PROXY_MAX_HEADERS", "100",
           "header fields in a request at most (then 431)", "--max-headers", "N"),
    Option("max_body_bytes", "SMARTDOC_PROXY_MAX_BODY_BYTES", "104857600",
           "largest request body, announced or streamed (then 413)", "--max-body-bytes",
           "BYTES"),
    Option("max_requests_in_flight", "SMARTDOC_PROXY_MAX_REQUESTS_IN_FLIGHT", "1000",
           "requests forwarded at once at most (then 503 at once)",
           "--max-requests-in-flight", "N"),
    Option("replay_budget_bytes", "SMARTDOC_PROXY_REPLAY_BUDGET_BYTES", "16777216",
           "memory all bodies kept for a resend may hold together; beyond it, bodies stream",
           "--replay-budget-bytes", "BYTES"),
    # Common servers close an idle keep-alive connection after 5 s (Apache httpd, Node) or
    # more (nginx 75 s, IIS 120 s, Kestrel 130 s): the proxy gives up its own idle ones first.
    Option("upstream_keepalive_seconds", "SMARTDOC_UPSTREAM_KEEPALIVE_SECONDS", "4",
           "seconds an idle pooled upstream connection is kept (below the upstream's own)",
           "--upstream-keepalive-seconds", "SECONDS"),
)  # fmt: skip

CONFIG_FILE = Option("config", "SMARTDOC_PROXY_CONFIG", None,
                     "TOML file with any of the settings above, in snake_case",
                     "--config", "PATH")  # fmt: skip
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


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
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{path}: {key} must be a string or a number")
    return str(value)


def _build(raw: Mapping[str, str | None]) -> Config:
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
        **_limits(raw),
    )


def _limits(raw: Mapping[str, str | None]) -> dict[str, Any]:
    seconds = ("client_header_timeout_seconds", "client_body_timeout_seconds",
               "client_body_total_timeout_seconds", "keepalive_timeout_seconds",
               "upstream_keepalive_seconds")  # fmt: skip
    counts = ("max_request_line_bytes", "max_header_bytes", "max_headers", "max_body_bytes",
              "max_requests_in_flight")  # fmt: skip
    values: dict[str, Any] = {name: _number(raw, name, float) for name in seconds}
    values |= {name: _number(raw, name, int) for name in counts}
    # 0: no body is kept for a resend, every body streams.
    values["replay_budget_bytes"] = _number(raw, "replay_budget_bytes", int, minimum=0)
    return values


def _fail(name: str, problem: str) -> ConfigError:
    return ConfigError(f"{OPTIONS_BY_NAME[name].sources}: {problem}")


def _required(raw: Mapping[str, str | None], name: str) -> str:
    value = (raw[name] or "").strip()
    if not value:
        raise _fail(name, f"is required: {OPTIONS_BY_NAME[name].help}")
    return value


def _listen(value: str) -> Listen:
    host, sep, port = value.rpartition(":")
    # An IPv6 address must be bracketed: "::1" alone would read as host ":" and port 1.
    bracketed = host.startswith("[") and host.endswith("]")
    if ":" in host and not bracketed:
        raise _fail("listen", f"{value!r}: write an IPv6 address in brackets, as [::1]:8080")
    host = host[1:-1] if bracketed else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _fail("listen", f"{value!r} is not HOST:PORT (for example 127.0.0.1:8080)")
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
