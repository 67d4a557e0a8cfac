"""Header rules for both directions: pure functions, no I/O.

A proxy is a separate hop, so the headers that describe a single connection must not cross
it (RFC 9110 §7.6.1); everything else passes unchanged, in order, with repeats kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from multidict import CIMultiDict, MultiMapping
from yarl import URL

# RFC 9110 §7.6.1 names Connection, Proxy-Connection, Keep-Alive, TE, Transfer-Encoding and
# Upgrade; Trailer and the Proxy-* family (Proxy-Authorization holds a client's credentials
# for *this* hop) are connection-scoped too.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
)

# Replaced by the proxy rather than passed on: Host is the upstream's (RFC 9110 §7.2), the
# client's Authorization gives way to the organization's token, and Expect: 100-continue has
# already been answered by this server before the body was read.
REPLACED_ON_REQUEST = frozenset({"host", "authorization", "expect"})

FORWARDED_FOR, FORWARDED_PROTO, FORWARDED_HOST = (
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
)
DEFAULT_PORTS = {"http": 80, "https": 443}


def connection_options(headers: MultiMapping[str]) -> frozenset[str]:
    """Header names a sender listed in ``Connection``: they are hop-by-hop for that message."""
    return frozenset(
        name.strip().lower()
        for value in headers.getall("Connection", [])
        for name in value.split(",")
        if name.strip()
    )


def is_hop_by_hop(name: str, listed: frozenset[str]) -> bool:
    lower = name.lower()
    return lower in HOP_BY_HOP or lower.startswith("proxy-") or lower in listed


def end_to_end(headers: Iterable[tuple[str, str]], listed: frozenset[str]) -> CIMultiDict[str]:
    """The headers that cross the proxy, in their original order, repeats kept.

    Repeats take the spelling of their first occurrence: aiohttp's client would otherwise
    keep only the last of ``X-A`` and ``x-a``, since it tells repeats apart case-sensitively.
    """
    spelling: dict[str, str] = {}
    return CIMultiDict(
        (spelling.setdefault(name.lower(), name), value)
        for name, value in headers
        if not is_hop_by_hop(name, listed)
    )


def request_headers(
    incoming: MultiMapping[str],
    *,
    token: str,
    client_ip: str | None,
    proto: str,
    host: str | None,
) -> CIMultiDict[str]:
    """Headers to send upstream for a client's request, carrying ``token``."""
    listed = connection_options(incoming)
    outgoing = end_to_end(
        ((k, v) for k, v in incoming.items() if k.lower() not in REPLACED_ON_REQUEST), listed
    )
    outgoing["Authorization"] = f"Bearer {token}"
    _append(outgoing, FORWARDED_FOR, client_ip)
    _append(outgoing, FORWARDED_PROTO, proto)
    _append(outgoing, FORWARDED_HOST, host)
    return outgoing


def _append(headers: CIMultiDict[str], name: str, value: str | None) -> None:
    # Appended, not replaced: earlier proxies' entries stay, and this hop adds its own.
    if not value:
        return
    earlier = headers.popall(name, [])
    headers[name] = ", ".join([*earlier, value])


def response_headers(
    incoming: MultiMapping[str], *, upstream: URL, proxy_origin: str
) -> CIMultiDict[str]:
    """Headers to send the client for an upstream response."""
    outgoing = end_to_end(incoming.items(), connection_options(incoming))
    if "Location" in outgoing:
        outgoing["Location"] = rewrite_location(outgoing["Location"], upstream, proxy_origin)
    return outgoing


def rewrite_location(location: str, upstream: URL, proxy_origin: str) -> str:
    """Point a redirect at the upstream's own origin back at the proxy; leave others alone.

    Relative locations already resolve against the proxy. Only the scheme and authority
    change: the rest of the value is kept byte for byte.
    """
    try:
        parts = urlsplit(location)
        port = parts.port
    except ValueError:
        return location
    if not parts.netloc:
        return location
    scheme = (parts.scheme or upstream.scheme).lower()
    same_origin = (
        scheme == upstream.scheme
        and (parts.hostname or "") == (upstream.host or "").lower()
        and (port or DEFAULT_PORTS.get(scheme)) == upstream.port
    )
    if not same_origin:
        return location
    prefix = len(f"{parts.scheme}:" if parts.scheme else "") + len("//") + len(parts.netloc)
    return proxy_origin + location[prefix:]
