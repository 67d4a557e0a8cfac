"""ASP.NET Core Problem Details (RFC 9457) responses: the one place errors become HTTP.

Bodies follow what ASP.NET Core writes: `type`, `title`, `status`, then `detail` when there is
one, `errors` for validation failures, and a W3C-style `traceId`. The middleware converts the
`errors.StandinError` tree everywhere, and aiohttp's own HTTP errors (unknown path, wrong method)
only under `/api`, so the token endpoint and the admin paths keep their own error shapes. Any other
exception is a bug: it is logged with its traceback and answered as ASP.NET's exception handler
answers one, a 500 problem that says nothing about the cause.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from .errors import StandinError, ValidationFailed
from .paths import is_api_path

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

_RFC9110 = "https://tools.ietf.org/html/rfc9110#section-"
_KINDS: dict[int, tuple[str, str]] = {
    400: (_RFC9110 + "15.5.1", "One or more validation errors occurred."),
    401: (_RFC9110 + "15.5.2", "Unauthorized"),
    404: (_RFC9110 + "15.5.5", "Not Found"),
    405: (_RFC9110 + "15.5.6", "Method Not Allowed"),
    409: (_RFC9110 + "15.5.10", "Conflict"),
    413: (_RFC9110 + "15.5.14", "Content Too Large"),
    415: (_RFC9110 + "15.5.16", "Unsupported Media Type"),
    429: ("https://tools.ietf.org/html/rfc6585#section-4", "Too Many Requests"),
    500: (_RFC9110 + "15.6.1", "An error occurred while processing your request."),
    503: (_RFC9110 + "15.6.4", "Service Unavailable"),
}
# Headers of an aiohttp HTTPException worth keeping on the problem response (e.g. `Allow` on 405).
_KEPT_HEADERS = (hdrs.ALLOW, hdrs.RETRY_AFTER)


def trace_id() -> str:
    """A fresh W3C trace-context id, the shape ASP.NET puts in `traceId`."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


def problem_body(
    status: int, *, detail: str | None = None, errors: Mapping[str, list[str]] | None = None
) -> dict[str, object]:
    """The Problem Details document for `status`, keys in ASP.NET's order."""
    kind, title = _KINDS.get(status, (_RFC9110 + "15", "Error"))
    body: dict[str, object] = {"type": kind, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = dict(errors)
    body["traceId"] = trace_id()
    return body


def problem_response(
    status: int,
    *,
    detail: str | None = None,
    errors: Mapping[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An `application/problem+json` response."""
    return web.json_response(
        problem_body(status, detail=detail, errors=errors),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    kept = {str(name): exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    return problem_response(exc.status, headers=kept)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn stand-in errors (anywhere), HTTP errors (under `/api`) and bugs into Problem Details."""
    try:
        return await handler(request)
    except ValidationFailed as exc:
        return problem_response(exc.status, errors=exc.errors)
    except StandinError as exc:
        return problem_response(exc.status, detail=exc.detail)
    except web.HTTPException as exc:
        if exc.status < 400 or not is_api_path(request.path):
            raise
        return _from_http_exception(exc)
    # Exception, not BaseException: asyncio.CancelledError must go on cancelling the handler.
    except Exception:
        logger.exception("unexpected error answering %s %s", request.method, request.path)
        return problem_response(500)
