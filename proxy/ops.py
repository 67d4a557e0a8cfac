"""The proxy's own endpoints under ``/_proxy/``: probes, metrics and the inspector, never
forwarded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from proxy.config import Config
from proxy.errors import TokenError
from proxy.inspector import routes as inspector
from proxy.keys import METRICS, TOKENS
from proxy.problems import SERVER, answer

PREFIX = "/_proxy/"
Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def healthz(request: web.Request) -> web.StreamResponse:
    """Alive: the process answers. Says nothing about SmartDocumentor."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    """Ready when a valid token is held or can be fetched now; 503 otherwise, whatever the
    reason, as load balancers expect, with the body the error table gives that reason."""
    tokens = request.app[TOKENS]
    try:
        await tokens.get()
    except TokenError as exc:
        return answer(exc, status=503)
    return web.json_response(
        {"status": "ready", "token_expires_in_seconds": round(tokens.seconds_until_expiry())}
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    # prometheus-client's own handler: content negotiation (OpenMetrics) and name[] filters.
    return await make_aiohttp_handler(request.app[METRICS].registry)(request)


ENDPOINTS: dict[str, Endpoint] = {
    "healthz": healthz,
    "readyz": readyz,
    "metrics": metrics,
    **inspector.ENDPOINTS,  # "" is the page, at /_proxy/ itself
}


# Probes carry no key, and say nothing of clients, keys or tokens.
KEYLESS = frozenset({PREFIX + "healthz", PREFIX + "readyz"})
INSPECTOR = frozenset(PREFIX + name for name in inspector.ENDPOINTS)


def is_own(raw_path: str) -> bool:
    return raw_path.startswith(PREFIX)


def keyless(path: str, config: Config) -> bool:
    """May this path be asked for without a key? The probes may; so may the inspector's,
    unless ``--inspector keys`` says that a key decides (else its gate decides alone)."""
    return path in KEYLESS or (path in INSPECTOR and config.inspector != "keys")


async def serve(request: web.Request) -> web.StreamResponse:
    """Answer a request for one of the proxy's own endpoints."""
    endpoint = ENDPOINTS.get(request.path.removeprefix(PREFIX))
    if endpoint is None:
        raise web.HTTPNotFound(text=f"{request.path} is not an endpoint of the proxy")
    if request.method not in ("GET", "HEAD"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
    response = await endpoint(request)
    response.headers["Server"] = SERVER
    return response
