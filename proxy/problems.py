"""The one boundary where the proxy's own failures become HTTP answers.

Every failure of the proxy's own (not the upstream's: its responses pass through untouched) is
answered as ``application/problem+json`` (RFC 9457), the format the SmartDocumentor API uses.
Details are written here, from the exception's type and safe fields: never a token or secret.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy.forward import UpstreamTimeout, UpstreamUnreachable
from proxy.grants import TokenError, TokenRejected

logger = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"
TYPE_BASE = "urn:smartdoc-proxy:problem:"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(
    status: int, slug: str, title: str, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A Problem Details response."""
    body = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    return web.Response(
        status=status, text=json.dumps(body), content_type=PROBLEM_TYPE, headers=headers
    )


def token_problem(exc: TokenError) -> web.Response:
    """A failed token fetch: the credentials' fault (502) or the endpoint's (503, retry)."""
    if isinstance(exc, TokenRejected):
        code = f" ({exc.code})" if exc.code else ""
        return problem(
            502,
            "token-rejected",
            "SmartDocumentor rejected the proxy's credentials",
            f"{exc.detail}{code}: the client id or secret was rejected or has expired. "
            "Run `smartdoc-proxy check` to see what the token endpoint says.",
        )
    retry_after = max(1, math.ceil(exc.retry_after_seconds or 1))
    return problem(
        503,
        "token-unavailable",
        "No token could be obtained from SmartDocumentor",
        f"{exc.detail}; try again in {retry_after} s.",
        headers={"Retry-After": str(retry_after)},
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TokenError as exc:
        return token_problem(exc)
    except UpstreamUnreachable as exc:
        return problem(502, "upstream-unreachable", "SmartDocumentor is unreachable", str(exc))
    except UpstreamTimeout as exc:
        return problem(504, "upstream-timeout", "SmartDocumentor did not answer in time", str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, f"http-{exc.status}", exc.reason, exc.text or exc.reason)
