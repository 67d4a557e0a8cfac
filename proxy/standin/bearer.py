"""Bearer-token checks for every path under `/api` (RFC 6750).

No token, or an `Authorization` header of another scheme, gets a bare challenge
(`WWW-Authenticate: Bearer`); a token that was presented but is unknown, revoked or expired gets
`error="invalid_token"` with a description, as RFC 6750 section 3 asks. The body is empty, as
ASP.NET's JwtBearer handler sends it. A valid token puts its organization on the request
(`keys.ORGANIZATION`): every handler after this sees that organization's data and no other.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from .keys import CLOCK, ORGANIZATION, ORGANIZATIONS, TOKENS
from .paths import is_api_path
from .tokens import TokenVerdict

_DESCRIPTIONS = {
    TokenVerdict.UNKNOWN: "The access token is not valid",
    TokenVerdict.EXPIRED: "The access token expired",
    TokenVerdict.REVOKED: "The access token was revoked",
}


def bearer_token(authorization: str | None) -> str | None:
    """The token of a `Bearer` header (maybe empty); None for no header or another scheme."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    # RFC 7235: the auth scheme is case-insensitive.
    return token.strip() if scheme.lower() == "bearer" else None


def challenge(verdict: TokenVerdict | None) -> str:
    """The `WWW-Authenticate` value for no token (None) or a token that failed with `verdict`."""
    if verdict is None:
        return "Bearer"
    description = _DESCRIPTIONS.get(verdict, _DESCRIPTIONS[TokenVerdict.UNKNOWN])
    return f'Bearer error="invalid_token", error_description="{description}"'


def _unauthorized(verdict: TokenVerdict | None) -> web.Response:
    return web.Response(status=401, headers={hdrs.WWW_AUTHENTICATE: challenge(verdict)})


@web.middleware
async def bearer_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer 401 for an `/api` request without a valid token; scope the others to its owner."""
    if not is_api_path(request.path):
        return await handler(request)
    token = bearer_token(request.headers.get(hdrs.AUTHORIZATION))
    if token is None:
        return _unauthorized(None)
    verdict, organization = request.app[TOKENS].check(token, request.app[CLOCK]())
    if verdict is not TokenVerdict.VALID or organization is None:
        return _unauthorized(verdict)
    request[ORGANIZATION] = request.app[ORGANIZATIONS].named(organization)
    return await handler(request)
