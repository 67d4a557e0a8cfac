"""The URL paths the stand-in answers, and which family a request path belongs to.

Three families, each with its own rules: the OAuth token endpoint (no Bearer token, IdentityServer
error bodies), the documented API under `/api` (Bearer token, Problem Details), and the admin paths
under `/_standin` (no token, never reachable under `/api` so API clients cannot stumble on them).
"""

from __future__ import annotations

TOKEN_PATH = "/connect/token"  # noqa: S105 - a URL path, not a credential
API_ROOT = "/api"
API_PREFIX = "/api/v1.0/external"
ADMIN_PREFIX = "/_standin"


def is_api_path(path: str) -> bool:
    """True for every path under `/api`, known or not: all of them require a Bearer token."""
    return path == API_ROOT or path.startswith(API_ROOT + "/")
