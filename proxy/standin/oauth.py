"""The token endpoint, `POST /connect/token`, answering as IdentityServer does.

Client authentication comes from the form (`client_id` + `client_secret`) or from HTTP Basic
(RFC 6749 section 2.3.1: `base64(urlencode(id) ":" urlencode(secret))`), never both. Checks run in
IdentityServer's order and the first failure answers `{"error": code}`:

1. not a POST, body not `application/x-www-form-urlencoded`, a parameter repeated, no client id,
   or two authentication methods at once: `invalid_request`;
2. unknown client or wrong or missing secret: `invalid_client`, however the client authenticated
   (a client is known when it is one of the configured organizations' clients; its token is then
   scoped to that organization);
3. no `grant_type`, or another grant than `client_credentials`: `unsupported_grant_type`;
4. a `scope` other than exactly `WebAPI`: `invalid_scope` (no scope means `WebAPI`).

Every error is a 400 without a `WWW-Authenticate` challenge, also for failed Basic authentication:
IdentityServer's `TokenErrorResult` always answers 400, although RFC 6749 section 5.2 allows a 401
there. Every answer carries `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 section
5.1). The token-request fault switch is applied to POSTs before any of this.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from aiohttp import hdrs, web

from .keys import CLOCK, FAULTS, SETTINGS, TOKENS
from .organization_settings import OrganizationSettings
from .paths import TOKEN_PATH

logger = logging.getLogger(__name__)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
GRANT_TYPE = "client_credentials"
SCOPE = "WebAPI"
ERROR_STATUS = 400
_NO_STORE = {hdrs.CACHE_CONTROL: "no-store", hdrs.PRAGMA: "no-cache"}


class OAuthError(Exception):
    """A token request failed with OAuth error `code`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class ClientCredentials:
    """The client id and secret a token request presented."""

    client_id: str
    client_secret: str | None = field(repr=False)


def _single_values(params: Mapping[str, list[str]]) -> dict[str, str]:
    # RFC 6749 section 3.2: parameters must not be included more than once.
    if any(len(values) > 1 for values in params.values()):
        raise OAuthError("invalid_request")
    return {name: values[0] for name, values in params.items()}


def _from_basic(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.strip().partition(" ")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_client") from exc
    client_id, sep, secret = decoded.partition(":")
    if scheme.lower() != "basic" or not sep:
        raise OAuthError("invalid_client")
    return unquote_plus(client_id), unquote_plus(secret)


def client_credentials(form: Mapping[str, str], authorization: str | None) -> ClientCredentials:
    """The credentials of a token request, from Basic or the form; raises `OAuthError`."""
    if authorization is None or not authorization.strip().lower().startswith("basic"):
        client_id = form.get("client_id", "")
        if not client_id:
            raise OAuthError("invalid_request")
        return ClientCredentials(client_id, form.get("client_secret"))
    client_id, secret = _from_basic(authorization)
    if "client_secret" in form or form.get("client_id", client_id) != client_id:
        raise OAuthError("invalid_request")
    return ClientCredentials(client_id, secret)


def authenticate(
    credentials: ClientCredentials, organizations: Sequence[OrganizationSettings]
) -> OrganizationSettings:
    """The organization whose client id and secret these are; raises `invalid_client`."""
    presented_id = credentials.client_id.encode()
    presented_secret = (credentials.client_secret or "").encode()
    found = None
    for organization in organizations:
        # compare_digest, and no early exit: the time taken says nothing about where the
        # strings differ, nor which organization came close.
        id_ok = hmac.compare_digest(presented_id, organization.client_id.encode())
        secret_ok = hmac.compare_digest(presented_secret, organization.client_secret.encode())
        if id_ok and secret_ok:
            found = organization
    if found is None or not credentials.client_secret:
        raise OAuthError("invalid_client")
    return found


def check_grant(form: Mapping[str, str]) -> None:
    """Raise unless the request asks for the client-credentials grant with scope `WebAPI`."""
    # A missing grant_type too: IdentityServer's TokenRequestValidator answers it this way, where
    # RFC 6749 section 5.2 would call a missing parameter `invalid_request`.
    if form.get("grant_type") != GRANT_TYPE:
        raise OAuthError("unsupported_grant_type")
    if "scope" in form and form["scope"] != SCOPE:
        raise OAuthError("invalid_scope")


def oauth_error_response(error: OAuthError) -> web.Response:
    """The IdentityServer-style JSON error answer."""
    return web.json_response({"error": error.code}, status=ERROR_STATUS, headers=_NO_STORE)


async def _form(request: web.Request) -> dict[str, str]:
    if request.content_type != FORM_CONTENT_TYPE:
        raise OAuthError("invalid_request")
    posted = await request.post()
    params: dict[str, list[str]] = {}
    for name, value in posted.items():
        params.setdefault(name, []).append(value if isinstance(value, str) else "")
    return _single_values(params)


async def _issue(request: web.Request) -> web.Response:
    form = await _form(request)
    credentials = client_credentials(form, request.headers.get(hdrs.AUTHORIZATION))
    settings = request.app[SETTINGS]
    organization = authenticate(credentials, settings.organizations)
    check_grant(form)
    token = request.app[TOKENS].issue(request.app[CLOCK](), organization.name)
    body = {
        "access_token": token,
        "expires_in": settings.token_lifetime_seconds,
        "token_type": "Bearer",
        "scope": SCOPE,
    }
    return web.json_response(body, headers=_NO_STORE)


# nginx's "client closed request": nobody receives it, it only says why the handler ended.
CLIENT_CLOSED_REQUEST = 499


def client_gone(request: web.Request) -> bool:
    """True once the connection `request` came on is closed or closing."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def token_endpoint(request: web.Request) -> web.StreamResponse:
    """`POST /connect/token`: apply the token fault switch, then answer the OAuth request."""
    switch = request.app[FAULTS]
    fault = switch.take_token_fault()
    if fault == "500":
        return web.Response(status=500, text="Internal Server Error (stand-in fault switch)")
    if fault == "invalid_client":
        return oauth_error_response(OAuthError("invalid_client"))
    if fault == "hang":
        # Take the body first: a hang released later must not read from a connection the
        # client has long closed. Once released, answer normally: the hang was the fault.
        await request.read()
        if not await switch.hang(lambda: client_gone(request)):
            logger.info("hung token request dropped: its client went away")
            return web.Response(status=CLIENT_CLOSED_REQUEST)
    try:
        return await _issue(request)
    except OAuthError as error:
        logger.info("token request refused: %s", error.code)
        return oauth_error_response(error)


async def not_a_post(request: web.Request) -> web.Response:
    """Any other method on the token path: IdentityServer answers `invalid_request`, not 405.

    No fault is used up: the switch counts token requests, and this is not one.
    """
    return oauth_error_response(OAuthError("invalid_request"))


routes = [
    web.post(TOKEN_PATH, token_endpoint),
    # Same path, so the same resource: aiohttp tries the POST route first, then this one.
    web.route(hdrs.METH_ANY, TOKEN_PATH, not_a_post),
]
