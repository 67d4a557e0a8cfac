"""The proxy's own endpoints under ``/_proxy/``, and the middleware that measures every request.

These paths belong to the proxy and are never forwarded.
"""

from __future__ import annotations

import time

from aiohttp import web

from proxy import logs
from proxy.grants import TokenError
from proxy.keys import BODY_BYTES, METRICS, RESENT, TOKENS
from proxy.metrics import CONTENT_TYPE, method_label
from proxy.problems import Handler, problem

PREFIX = "/_proxy/"
# nginx's convention for "the client went away before the answer": no status was sent.
CLIENT_CLOSED = 499


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers. Says nothing about SmartDocumentor."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when a valid token is held or can be fetched now."""
    tokens = request.app[TOKENS]
    try:
        await tokens.get()
    except TokenError as exc:
        return problem(503, "not-ready", "Not ready: no token", exc.detail)
    return web.json_response(
        {"status": "ready", "token_expires_in_seconds": round(tokens.seconds_until_expiry())}
    )


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def not_found(request: web.Request) -> web.Response:
    raise web.HTTPNotFound(text=f"{request.path} is not an endpoint of the proxy")


def add_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX + "healthz", healthz, allow_head=True)
    app.router.add_get(PREFIX + "readyz", readyz, allow_head=True)
    app.router.add_get(PREFIX + "metrics", metrics)
    app.router.add_route("*", PREFIX + "{tail:.*}", not_found)


def _body_bytes(request: web.Request, response: web.StreamResponse) -> int:
    """Body bytes sent to the client: as counted by the forwarder, or the proxy's own body."""
    if BODY_BYTES in request:
        return request[BODY_BYTES]
    body = response.body if isinstance(response, web.Response) else None
    return len(body) if isinstance(body, bytes) and request.method != "HEAD" else 0


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count, time and log every request, whatever its outcome."""
    registry = request.app[METRICS]
    started = time.perf_counter()
    status, size = CLIENT_CLOSED, 0
    try:
        with registry.in_flight.track_inprogress():
            response = await handler(request)
        status, size = response.status, _body_bytes(request, response)
        return response
    except Exception:
        status = 500
        raise
    finally:
        elapsed = time.perf_counter() - started
        registry.requests.labels(method_label(request.method), str(status)).inc()
        registry.request_seconds.observe(elapsed)
        logs.log_access(
            logs.AccessRecord(
                method=request.method,
                # The raw path, as received: decoding it would let a %0A forge a log line.
                path=request.raw_path.partition("?")[0],
                status=status,
                duration_ms=elapsed * 1000,
                bytes=size,
                resent=request.get(RESENT, False),
            )
        )
