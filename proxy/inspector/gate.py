"""Who may open the inspector (``--inspector off|loopback|keys``): a pure rule and its check.

- ``off``: nobody; its paths do not exist (404).
- ``loopback``: whoever connects from this machine, without a key, judged on the TCP peer
  address (never ``X-Forwarded-For``). The ``Host`` it asked for must name loopback too, so a
  web page that rebinds its own domain name to 127.0.0.1 cannot read the inspector from a
  developer's browser.
- ``keys``: only the clients named in ``--inspector-clients``, by their key from the keys file
  (the handler has already asked for one: a missing or wrong key is a 401 before this).

Everyone else gets 403. The page and its data are never forwarded.
"""

from __future__ import annotations

import re

from aiohttp import web

from proxy.access import admitted
from proxy.errors import AccessDenied
from proxy.keys import LIVE

# RFC 6761 §6.3: localhost and its subdomains are loopback; with or without a port.
LOOPBACK_HOST = re.compile(
    r"(?:(?:[a-z0-9-]+\.)*localhost|127(?:\.\d{1,3}){3}|\[::1\])\.?(?::\d{1,5})?", re.IGNORECASE
)


def refusal(
    mode: str, *, peer: str | None, host: str | None, client: str | None, clients: frozenset[str]
) -> str | None:
    """Why this request may not open the inspector, or ``None`` when it may."""
    if mode == "loopback":
        if not admitted(peer, ()):
            return "the inspector is open to this machine only (--inspector loopback)"
        if host is not None and not LOOPBACK_HOST.fullmatch(host):
            return "the inspector answers only to a loopback name, such as 127.0.0.1 or localhost"
        return None
    if mode == "keys":
        if client is not None and client in clients:
            return None
        return "the inspector is open only to the clients named in --inspector-clients"
    return "the inspector is off"


def check(request: web.Request) -> None:
    """Raise unless this request may open the inspector."""
    live = request.app[LIVE]
    mode = live.config.inspector
    if mode == "off":
        raise web.HTTPNotFound(text="the inspector is off (--inspector off)")
    # With keys the handler has already checked the key; this asks whose it is.
    client = live.access.client(request.headers) if mode == "keys" else None
    reason = refusal(
        mode,
        peer=request.remote,
        host=request.headers.get("Host"),
        client=client,
        clients=live.config.inspector_clients,
    )
    if reason is not None:
        raise AccessDenied(reason)
