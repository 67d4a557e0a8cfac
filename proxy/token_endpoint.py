"""The proxy's own ``POST /connect/token``, in the vendor's shapes, issuing proxy-local tokens.

Clients written for SmartDocumentor ask ``/connect/token`` first. Through the proxy they get a
local token for their inbound key (``client_id`` = the key's name, ``client_secret`` = the
key, in the form body or as HTTP Basic), never the organization's token, which stays inside.
Errors are IdentityServer's: ``400 {"error": "..."}``.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from aiohttp import web

from proxy import bodies
from proxy.access import LOCAL_TOKEN_LIFETIME_SECONDS, Access, basic_credentials

TOKEN_PATH = "/connect/token"  # noqa: S105 (a URL path, not a password)
# RFC 6749 §5.1: token answers must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def is_token_request(path: str) -> bool:
    return path == TOKEN_PATH


def _error(code: str) -> web.Response:
    return web.json_response({"error": code}, status=400, headers=NO_STORE)


async def answer(
    request: web.Request, access: Access, default_scope: str, serves: str | None
) -> web.Response:
    """The answer to ``POST /connect/token`` on an address that ``serves`` an organization
    (``None``: the shared address of several); a key of another organization is refused
    there as wrong credentials are."""
    if request.method != "POST":
        return _error("invalid_request")
    await bodies.send_for(request)
    form = await request.post()
    grant_type, scope = form.get("grant_type"), form.get("scope") or default_scope
    if grant_type != "client_credentials":
        return _error("unsupported_grant_type")
    basic = basic_credentials(request.headers.get("Authorization", ""))
    if basic is not None:
        # RFC 6749 §2.3.1 form-encodes both parts before Basic encoding; not every client does.
        tried = [basic, (unquote_plus(basic[0]), unquote_plus(basic[1]))]
    else:
        tried = [(str(form.get("client_id", "")), str(form.get("client_secret", "")))]
    issued = next(filter(None, (access.local_token(*pair, serves) for pair in tried)), None)
    if issued is None:
        return _error("invalid_client")
    _, token = issued
    body = {
        "access_token": token,
        "expires_in": LOCAL_TOKEN_LIFETIME_SECONDS,
        "token_type": "Bearer",
        "scope": str(scope),
    }
    return web.json_response(body, headers=NO_STORE)
