"""The URL paths the stand-in answers, and which family a request path belongs to.

Three families, each with its own rules: the OAuth token endpoint (no Bearer token, IdentityServer
error bodies), the documented API under `/api` (Bearer token, Problem Details), and the admin paths
under `/_standin` (no token, never reachable under `/api` so API clients cannot stumble on them).

Ids in paths (`GetExportData/{taskId}`) are Int32 route values, as in the vendor's ASP.NET routes:
`id_segment` builds the route pattern and `path_id` reads the value back.
"""

from __future__ import annotations

from aiohttp import web

from .errors import NotFound
from .int32 import DIGITS, is_int32

TOKEN_PATH = "/connect/token"  # noqa: S105 - a URL path, not a credential
API_ROOT = "/api"
API_PREFIX = "/api/v1.0/external"
ADMIN_PREFIX = "/_standin"


def is_api_path(path: str) -> bool:
    """True for every path under `/api`, known or not: all of them require a Bearer token."""
    return path == API_ROOT or path.startswith(API_ROOT + "/")


def id_segment(name: str) -> str:
    """The route segment `{name}` for an Int32 id: one to ten ASCII digits, nothing else."""
    return f"{{{name}:{DIGITS}}}"


def path_id(request: web.Request, name: str) -> int:
    """The id in segment `name` of a route built with `id_segment`; raises `NotFound`.

    Ten digits can still exceed an Int32; ASP.NET's `{id:int}` constraint then matches no route,
    so this answers the same bare 404 as a path no route matches, not a validation error.
    """
    number = int(request.match_info[name])  # safe: at most ten ASCII digits, see `id_segment`
    if not is_int32(number):
        raise NotFound()
    return number
