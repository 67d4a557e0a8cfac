"""The proxy's own endpoints under ``/_proxy/``: probes, metrics and the inspector, never
forwarded."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from proxy.config import DEFAULT_ORGANIZATION, Config
from proxy.errors import TokenError
from proxy.inspector import routes as inspector
from proxy.keys import LIVE, METRICS, TOKEN_CACHES
from proxy.problems import SERVER, answer, detail_of
from proxy.tokens import Token, TokenCache

PREFIX = "/_proxy/"
READYZ_OF = "readyz/"  # + an organization's name
# How long the readiness of several organizations waits for their tokens: less than a load
# balancer's probe timeout (Kubernetes: 1 s), so that one organization's hanging token
# endpoint cannot make the probe time out and take the others out with it.
READY_WAIT_SECONDS = 0.5
Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def healthz(request: web.Request) -> web.StreamResponse:
    """Alive: the process answers. Says nothing about SmartDocumentor."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    """Ready when a valid token is held or can be fetched now; 503 otherwise, whatever the
    reason, as load balancers expect, with the body the error table gives that reason.

    With several organizations: ready (200) while at least one of them is, with each one's
    state; a broken organization must not take the others out of a load balancer."""
    caches = request.app[TOKEN_CACHES]
    if request.app[LIVE].config.single_organization:
        return await _readiness(caches[DEFAULT_ORGANIZATION])
    states = await _states(caches)
    ready = any(state["ready"] for state in states.values())
    body = {"status": "ready" if ready else "not ready", "organizations": states}
    return web.json_response(body, status=200 if ready else 503)


async def readyz_of(request: web.Request, organization: str) -> web.StreamResponse:
    """One organization's readiness, as :func:`readyz` answers for a single one."""
    cache = request.app[TOKEN_CACHES].get(organization)
    if cache is None:
        raise web.HTTPNotFound(text=f"there is no organization {organization!r}")
    return await _readiness(cache, {"organization": organization})


async def _readiness(
    tokens: TokenCache, extra: Mapping[str, object] | None = None
) -> web.StreamResponse:
    try:
        await tokens.get()
    except TokenError as exc:
        return answer(exc, status=503)
    expires_in = round(tokens.seconds_until_expiry())
    return web.json_response(
        {"status": "ready", **(extra or {}), "token_expires_in_seconds": expires_in}
    )


async def _states(caches: Mapping[str, TokenCache]) -> dict[str, dict[str, object]]:
    """Each organization's readiness, asked all at once and waited for a short while."""
    asking = {name: asyncio.ensure_future(cache.get()) for name, cache in caches.items()}
    await asyncio.wait(asking.values(), timeout=READY_WAIT_SECONDS)
    states = {name: _state(asked, caches[name]) for name, asked in asking.items()}
    pending = [asked for asked in asking.values() if not asked.done()]
    for asked in pending:
        # Only the waiting ends: the fetch it joined goes on (the cache shields it).
        asked.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return states


def _state(asked: asyncio.Future[Token], tokens: TokenCache) -> dict[str, object]:
    if not asked.done():
        return {"ready": False, "reason": "the token endpoint has not answered yet"}
    failure = asked.exception()
    if isinstance(failure, TokenError):
        return {"ready": False, "reason": detail_of(failure)} | (
            {"code": failure.code} if failure.code else {}
        )
    if failure is not None:
        raise failure
    return {"ready": True, "token_expires_in_seconds": round(tokens.seconds_until_expiry())}


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
    if path in KEYLESS or path.startswith(PREFIX + READYZ_OF):
        return True
    return path in INSPECTOR and config.inspector != "keys"


def _endpoint(path: str) -> Endpoint | None:
    name = path.removeprefix(PREFIX)
    if name.startswith(READYZ_OF):
        return functools.partial(readyz_of, organization=name.removeprefix(READYZ_OF))
    return ENDPOINTS.get(name)


async def serve(request: web.Request) -> web.StreamResponse:
    """Answer a request for one of the proxy's own endpoints."""
    endpoint = _endpoint(request.path)
    if endpoint is None:
        raise web.HTTPNotFound(text=f"{request.path} is not an endpoint of the proxy")
    if request.method not in ("GET", "HEAD"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
    response = await endpoint(request)
    response.headers["Server"] = SERVER
    return response
