"""How the proxy reaches the outside from a corporate network: through its egress proxy.

The standard variables, read once at start-up from the environment the command line passes
in: ``HTTPS_PROXY`` for https:// targets, ``HTTP_PROXY`` for http:// ones, ``NO_PROXY`` for
the hosts reached directly. A lower-case spelling (``https_proxy``) wins over the upper-case
one when both are set, as in Python's urllib and curl; an empty value means unset.

An https:// target is reached through a ``CONNECT`` tunnel with TLS from end to end, so the
egress proxy learns the target's host and port and nothing else: not the token, not the
secret. An http:// target (a local stand-in, say) is sent to the egress proxy in clear, token
and secret included, as any http:// request through it would be; start-up warns about it.

Why not aiohttp's ``trust_env=True``, which reads the same variables: it also reads
``~/.netrc`` and adds the Basic credentials it finds there to every request that carries none,
so the token endpoint would receive a netrc password, and every forwarded request (which does
carry its Bearer) would fail with ``ValueError``. It also re-reads the environment, in a
thread, for every request.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from proxy.config import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """How one target is reached: through the egress proxy a variable named, or directly
    (``proxy`` is ``None``). ``proxy`` is a ``ClientSession``'s ``proxy``."""

    # user:password included, if the variable had them: aiohttp sends them to the egress proxy
    # (and only there) as Proxy-Authorization. Kept out of repr for that reason.
    proxy: URL | None = field(default=None, repr=False)
    variable: str = ""

    @property
    def shown(self) -> str:
        """The egress proxy's origin, without credentials, for log lines."""
        return str(self.proxy.origin()) if self.proxy is not None else "none"


DIRECTLY = Route()


@dataclass(frozen=True)
class EgressProxies:
    """The egress proxy for each target scheme, and the ``NO_PROXY`` entries."""

    http: Route | None = None
    https: Route | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> EgressProxies:
        """Read the standard variables; :class:`ConfigError` names one that is not usable."""
        no_proxy = _variable(env, "no_proxy")
        return cls(
            http=_route(env, "http_proxy"),
            https=_route(env, "https_proxy"),
            no_proxy=tuple(no_proxy[1].split(",")) if no_proxy else (),
        )

    def route(self, target: URL) -> Route:
        """How to reach ``target``: through the egress proxy for its scheme, or directly."""
        chosen = self.https if target.scheme == "https" else self.http
        if chosen is None or bypasses(target.host or "", target.port, self.no_proxy):
            return DIRECTLY
        return chosen


NO_PROXIES = EgressProxies()


def bypasses(host: str, port: int | None, no_proxy: Sequence[str]) -> bool:
    """Whether a ``NO_PROXY`` entry sends ``host:port`` around the egress proxy.

    Entries are read as curl (7.86 and later) reads them: ``*`` for every host; a domain,
    which matches itself and every name below it, with or without a leading dot; an IP
    address or a CIDR range, which match IP addresses only (no name is resolved to find
    out); any of them with ``:PORT`` to match that port only.
    """
    host = host.lower().strip("[]")
    for entry in (e.strip().lower() for e in no_proxy):
        if entry == "*":
            return True
        name, entry_port = _split_port(entry)
        if not name or (entry_port is not None and entry_port != port):
            continue
        if _matches(host, name):
            return True
    return False


def announce(what: str, target: URL, route: Route) -> None:
    """Log, once at start-up, that ``target`` is reached through an egress proxy."""
    if route.proxy is None:
        return
    logger.info(
        "%s %s: through the egress proxy %s (%s)", what, target, route.shown, route.variable
    )
    if target.scheme == "http":
        logger.warning(
            "%s %s is http://: the egress proxy %s sees those requests in clear, with the "
            "token or the client secret in them; only https:// targets go through a tunnel",
            what,
            target,
            route.shown,
        )


def explain(exc: BaseException | None, *, connect_errors: bool = True) -> str | None:
    """The cause of a failed outgoing connection, in words safe to print (no credentials), for
    the causes an operator can fix; ``None`` for any other. ``connect_errors=False`` leaves
    out a plain failure to connect, for a caller that has said it already."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        error = exc.certificate_error
        reason = getattr(error, "verify_message", None) or str(error)
        return (
            f"the certificate of {exc.host}:{exc.port} is not trusted ({reason}); behind an "
            "egress proxy that inspects TLS, name its CA with --upstream-ca-file"
        )
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return f"cannot connect to the egress proxy {exc.host}:{exc.port} ({exc.strerror})"
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return f"the egress proxy refused the tunnel: {exc.status} {exc.message}"
    if isinstance(exc, aiohttp.ClientConnectorError) and connect_errors:
        return f"cannot connect to {exc.host}:{exc.port} ({exc.strerror})"
    return None


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port``, or a bare IPv6 address (several colons)."""
    if entry.startswith("["):
        name, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return name, int(port) if port.isdigit() else None
    name, colon, port = entry.rpartition(":")
    if colon and ":" not in name and port.isdigit():
        return name, int(port)
    return entry, None


def _matches(host: str, name: str) -> bool:
    try:
        network = ipaddress.ip_network(name, strict=False)
    except ValueError:
        domain = name.lstrip(".")
        return bool(domain) and (host == domain or host.endswith("." + domain))
    try:
        return ipaddress.ip_address(host) in network
    except ValueError:
        return False


def _variable(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """``(spelling, value)`` of ``name``: lower case first; ``None`` when unset or empty."""
    for spelling in (name.lower(), name.upper()):
        if spelling in env:
            value = env[spelling].strip()
            return (spelling, value) if value else None
    return None


def _route(env: Mapping[str, str], name: str) -> Route | None:
    found = _variable(env, name)
    if found is None:
        return None
    variable, value = found
    try:
        # A bare host:port is an http:// proxy, as curl reads it.
        url = URL(value if "://" in value else f"http://{value}")
        usable = url.scheme == "http" and bool(url.host)
    except ValueError:
        usable = False
    if not usable:
        # The value is not repeated: it may hold the egress proxy's password.
        raise ConfigError(
            f"{variable} is not an http:// proxy URL such as http://proxy.example:3128 "
            "(https:// and socks proxies are not supported)"
        )
    return Route(url.with_path("").with_query(None).with_fragment(None), variable)
