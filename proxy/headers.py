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
# already been answered by this server before the body was read. X-Proxy-Key is the client's
# key for this proxy: it never leaves it.
REPLACED_ON_REQUEST = frozenset({"host", "authorization", "expect", "x-proxy-key"})

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


def end_to_end(
    headers: Iterable[tuple[str, str]],
    listed: frozenset[str],
    dropped: frozenset[str] = frozenset(),
) -> CIMultiDict[str]:
    """The headers that cross the proxy, in their original order, repeats kept: all but the
    hop-by-hop ones, those ``listed`` in ``Connection``, and those ``dropped`` (lowercase).

    Repeats take the spelling of their first occurrence: aiohttp's client would otherwise
    keep only the last of ``X-A`` and ``x-a``, since it tells repeats apart case-sensitively.
    One pass, each name lowered once: this runs for every header of every request and answer.
    """
    spelling: dict[str, str] = {}
    kept = []
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in listed or lower in dropped or lower.startswith("proxy-"):
            continue
        kept.append((spelling.setdefault(lower, name), value))
    return CIMultiDict(kept)


def request_headers(
    incoming: MultiMapping[str],
    *,
    client_ip: str | None,
    proto: str,
    host: str | None,
) -> CIMultiDict[str]:
    """Headers to send upstream for a client's request, all but the token's."""
    outgoing = end_to_end(incoming.items(), connection_options(incoming), REPLACED_ON_REQUEST)
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
    incoming: MultiMapping[str], *, upstream: URL, public_origin: str | None
) -> CIMultiDict[str]:
    """Headers to send the client for an upstream response."""
    outgoing = end_to_end(incoming.items(), connection_options(incoming))
    if "Location" in outgoing:
        outgoing["Location"] = rewrite_location(outgoing["Location"], upstream, public_origin)
    return outgoing


def rewrite_location(location: str, upstream: URL, public_origin: str | None) -> str:
    """Point a redirect at the upstream's own origin back at the proxy; leave others alone.

    The proxy's origin is never taken from the request's ``Host``, which the client chooses
    (``Host: evil.example`` would make an open redirect, and poison a shared cache): it is the
    configured public origin, or else the reference is made origin-relative, which the client
    resolves against the URL it asked for (RFC 9110 §10.2.2). Only the scheme and authority
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
    rest = location[prefix:]
    if public_origin is not None:
        return public_origin + rest
    # "https://api" has an empty path; "?q" alone would not be origin-relative.
    return rest if rest.startswith("/") else "/" + rest
