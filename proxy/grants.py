"""What the token endpoint is asked, and what its answers amount to.

:class:`TokenClient` makes the one HTTP call, exactly as the vendor documents it; the rules for
reading the answer are pure functions (:func:`parse_grant`, :func:`lifetime_of`,
:func:`oauth_code`, :func:`redact`). Failures are the :class:`~proxy.errors.TokenError` family.

Text from the token endpoint is never trusted: only an RFC 6749 error code from a fixed list is
named to clients, and ``error_description`` is kept for the log and ``check`` alone, with the
secret redacted in every form it could take and control characters escaped.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import aiohttp
from yarl import URL

from proxy.errors import SecretUnreadable, TokenError, TokenRejected, TokenUnavailable
from proxy.text import printable
from proxy.version import VERSION

MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
MAX_DESCRIPTION_CHARS = 200
REDACTED = "[redacted]"
UNREADABLE = "the proxy cannot read its client secret file"
# Token requests are the proxy's own, so they say who sends them; forwarded requests carry
# the client's User-Agent (or none), never this.
USER_AGENT = f"smartdoc-proxy/{VERSION}"

# RFC 6749 §5.2: the only codes a token endpoint's error answer may carry.
OAUTH_ERROR_CODES = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)
UNRECOGNISED = "unrecognised error"


@dataclass(frozen=True)
class Grant:
    """What the token endpoint issued."""

    access_token: str = field(repr=False)
    lifetime_seconds: float


@dataclass(frozen=True)
class Credentials:
    """What a token request needs: values in, so this module never sees ``Config``."""

    token_url: URL
    client_id: str
    scope: str
    client_auth: str
    timeout_seconds: float
    default_lifetime_seconds: float
    # Exactly one of the two. A file is re-read on every request: generating a new secret
    # disables the old one at once, and a rotated file must work without a restart.
    secret: str | None = field(default=None, repr=False)
    secret_file: Path | None = None
    user_agent: str = USER_AGENT

    def read_secret(self) -> str:
        if self.secret_file is None:
            return self.secret or ""
        path = self.secret_file.absolute()
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
            raise SecretUnreadable(f"{UNREADABLE} {path}: {reason}") from exc
        if not secret:
            # Read in the middle of a rotation that truncates before it writes, say. Sent, it
            # would be refused as invalid_client, which blames the organization's secret.
            raise SecretUnreadable(f"{UNREADABLE} {path}: it is empty")
        return secret


def lifetime_of(expires_in: object, default_seconds: float) -> float:
    """Seconds a token lives, from an ``expires_in`` that may be a number, a string or absent."""
    if isinstance(expires_in, bool) or expires_in is None:
        return default_seconds
    if isinstance(expires_in, int | float):
        seconds = float(expires_in)
    elif isinstance(expires_in, str):
        try:
            seconds = float(expires_in.strip())
        except ValueError:
            return default_seconds
    else:
        return default_seconds
    return seconds if math.isfinite(seconds) else default_seconds


def oauth_code(error: object) -> str | None:
    """The endpoint's ``error`` if it is one of RFC 6749's codes, else ``None``."""
    return error if isinstance(error, str) and error in OAUTH_ERROR_CODES else None


def secret_forms(secret: str, client_id: str) -> list[str]:
    """Every spelling in which an endpoint could echo the secret back: raw, form- and
    URL-encoded, JSON-escaped, and inside a Basic credential (alone or as ``id:secret``)."""
    forms = {secret, quote_plus(secret), quote(secret, safe=""), json.dumps(secret)[1:-1]}
    for user, password in ((client_id, secret), (quote_plus(client_id), quote_plus(secret))):
        forms.add(base64.b64encode(f"{user}:{password}".encode()).decode())
    forms.add(base64.b64encode(secret.encode()).decode())
    # Longest first, so that no shorter form leaves part of a longer one behind.
    return sorted((form for form in forms if form), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every given form replaced, then made printable and cut to a sane length."""
    for form in secrets:
        text = text.replace(form, REDACTED)
    return printable(text, MAX_DESCRIPTION_CHARS)


def _json_object(body: bytes) -> dict[str, object] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_grant(status: int, body: bytes, default_lifetime_seconds: float) -> Grant:
    """Read a token endpoint's answer, or raise the :class:`TokenError` it amounts to.

    Raised errors carry the endpoint's ``error_description`` unredacted: the caller, who knows
    the secret, redacts it (:meth:`TokenClient.fetch`).
    """
    data = _json_object(body)
    if status >= 500 or status == 429:
        raise TokenUnavailable(f"the token endpoint answered {status}")
    if status != 200:
        error = (data or {}).get("error")
        description = (data or {}).get("error_description")
        code = oauth_code(error)
        named = code or (UNRECOGNISED if error is not None else "no error code")
        raise TokenRejected(
            f"the token endpoint answered {status} ({named})",
            code=code,
            description=description if isinstance(description, str) else None,
        )
    if data is None:
        # An HTML error page or a cut-off JSON document with a 200: the endpoint is failing,
        # which says nothing about the credentials.
        raise TokenUnavailable("the token endpoint answered 200 with a body that is not JSON")
    access_token, token_type = data.get("access_token"), data.get("token_type", "Bearer")
    if not isinstance(access_token, str) or not access_token:
        # A 200 accepted the credentials; an answer without a token is the endpoint failing.
        raise TokenUnavailable("the token endpoint answered 200 without an access_token")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        kind = printable(str(token_type), 40)
        raise TokenRejected(f"the token endpoint issued a {kind!r} token, not Bearer")
    return Grant(access_token, lifetime_of(data.get("expires_in"), default_lifetime_seconds))


async def read_capped(chunks: AsyncIterator[bytes], cap: int) -> bytes:
    """The whole body, to its end, or :class:`TokenUnavailable` once it grows past ``cap``."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > cap:
            raise TokenUnavailable(f"the token endpoint's answer is larger than {cap} bytes")
    return bytes(body)


class TokenClient:
    """Asks the token endpoint for one token, exactly as the vendor documents."""

    def __init__(self, session: aiohttp.ClientSession, credentials: Credentials) -> None:
        self._session = session
        self._credentials = credentials

    def __repr__(self) -> str:
        return f"TokenClient({self._credentials.token_url}, {self._credentials.client_id!r})"

    async def fetch(self) -> Grant:
        credentials = self._credentials
        secret = credentials.read_secret()
        try:
            status, body = await self._post(secret)
            return parse_grant(status, body, credentials.default_lifetime_seconds)
        except TokenError as exc:
            if exc.description is not None:
                exc.description = redact(
                    exc.description, secret_forms(secret, credentials.client_id) if secret else ()
                )
            raise

    async def _post(self, secret: str) -> tuple[int, bytes]:
        credentials = self._credentials
        form = {"grant_type": "client_credentials", "scope": credentials.scope}
        headers = {"Accept": "application/json", "User-Agent": credentials.user_agent}
        if credentials.client_auth == "basic":
            # RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding.
            user, password = quote_plus(credentials.client_id), quote_plus(secret)
            headers["Authorization"] = aiohttp.encode_basic_auth(user, password)
        else:
            form |= {"client_id": credentials.client_id, "client_secret": secret}
        try:
            async with self._session.post(
                credentials.token_url,
                data=form,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=credentials.timeout_seconds),
            ) as response:
                length = response.content_length
                if length is not None and length > MAX_TOKEN_RESPONSE_BYTES:
                    raise TokenUnavailable(
                        f"the token endpoint's answer is larger than {MAX_TOKEN_RESPONSE_BYTES}"
                        " bytes"
                    )
                body = await read_capped(response.content.iter_any(), MAX_TOKEN_RESPONSE_BYTES)
                return response.status, body
        except TimeoutError as exc:
            seconds = credentials.timeout_seconds
            raise TokenUnavailable(
                f"the token endpoint did not answer within {seconds:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise TokenUnavailable(f"the token endpoint {unreachable_reason(exc)}") from exc


def unreachable_reason(exc: BaseException) -> str:
    """Why a request failed, in words an operator can act on (never a Python class name)."""
    if isinstance(exc, TimeoutError):
        return "did not answer in time"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        # OpenSSL's own words ("unable to get local issuer certificate"); str() would wrap
        # them in an "[SSL: ...]" code and a line of C source.
        said = getattr(exc.certificate_error, "verify_message", None)
        return f"failed TLS verification: {said or 'its certificate was refused'}"
    if isinstance(exc, aiohttp.ClientSSLError):
        reason = getattr(exc.os_error, "reason", None)  # such as WRONG_VERSION_NUMBER
        words = f" ({reason.lower().replace('_', ' ')})" if isinstance(reason, str) else ""
        return f"failed the TLS handshake{words}"
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return f"is unreachable: the egress proxy {exc.host}:{exc.port} does not answer"
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return f"is unreachable: the egress proxy refused the tunnel ({exc.status})"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "is unreachable: its host name could not be resolved"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "is unreachable: connection refused"
        return f"is unreachable: {exc.os_error.strerror or 'cannot connect'}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "closed the connection without answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "cut its answer short"
    if isinstance(exc, aiohttp.ClientOSError):
        return "reset the connection"
    return "is unreachable"
