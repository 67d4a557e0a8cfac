"""What the token endpoint is asked, and what its answers amount to.

:class:`TokenClient` makes the one HTTP call, exactly as the vendor documents it; the rules for
reading the answer are pure functions (:func:`parse_grant`, :func:`lifetime_of`).

Exceptions::

    TokenError              nothing usable came back from the token endpoint
    ├── TokenRejected       it refused the credentials or answered something unusable (→ 502)
    │                       (``code`` holds the endpoint's OAuth error code, when it sent one)
    └── TokenUnavailable    it was unreachable, too slow or answered 5xx/429 (→ 503)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self
from urllib.parse import quote_plus

import aiohttp

if TYPE_CHECKING:
    from proxy.config import Config

MAX_TOKEN_RESPONSE_BYTES = 64 * 1024


class TokenError(Exception):
    """Base of token failures. ``detail`` is safe to show: it never holds a secret or token."""

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        description: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.description = description
        self.retry_after_seconds = retry_after_seconds

    def again(self, retry_after_seconds: float) -> Self:
        """The same failure, served again from the negative cache."""
        return type(self)(
            self.detail,
            code=self.code,
            description=self.description,
            retry_after_seconds=retry_after_seconds,
        )


class TokenRejected(TokenError):
    """The token endpoint refused the credentials (``invalid_client`` and the like)."""


class TokenUnavailable(TokenError):
    """The token endpoint could not be reached, was too slow, or failed on its side."""


@dataclass(frozen=True)
class Grant:
    """What the token endpoint issued."""

    access_token: str = field(repr=False)
    lifetime_seconds: float


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


def _json_object(body: bytes) -> dict[str, object]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def parse_grant(status: int, body: bytes, default_lifetime_seconds: float) -> Grant:
    """Read a token endpoint's answer, or raise the :class:`TokenError` it amounts to."""
    data = _json_object(body)
    if status >= 500 or status == 429:
        raise TokenUnavailable(f"the token endpoint answered {status}")
    if status != 200:
        error, description = data.get("error"), data.get("error_description")
        raise TokenRejected(
            f"the token endpoint answered {status}",
            code=error if isinstance(error, str) and error else None,
            description=description if isinstance(description, str) else None,
        )
    access_token, token_type = data.get("access_token"), data.get("token_type", "Bearer")
    if not isinstance(access_token, str) or not access_token:
        raise TokenRejected("the token endpoint answered 200 without an access_token")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenRejected(f"the token endpoint issued a {token_type!r} token, not Bearer")
    return Grant(access_token, lifetime_of(data.get("expires_in"), default_lifetime_seconds))


class TokenClient:
    """Asks the token endpoint for one token, exactly as the vendor documents."""

    def __init__(self, session: aiohttp.ClientSession, config: Config) -> None:
        self._session = session
        self._config = config

    def _read_secret(self) -> str:
        # Re-read on every request: generating a new secret disables the old one at once, and a
        # rotated secret file must work without a restart.
        path = self._config.client_secret_file
        if path is None:
            return self._config.client_secret or ""
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TokenRejected(
                f"cannot read the client secret file {path}: {exc.strerror}"
            ) from exc

    async def fetch(self) -> Grant:
        config, secret = self._config, self._read_secret()
        form = {"grant_type": "client_credentials", "scope": config.scope}
        headers = {"Accept": "application/json"}
        if config.client_auth == "basic":
            # RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding.
            basic = aiohttp.encode_basic_auth(quote_plus(config.client_id), quote_plus(secret))
            headers["Authorization"] = basic
        else:
            form |= {"client_id": config.client_id, "client_secret": secret}
        try:
            async with self._session.post(
                config.token_url,
                data=form,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=config.token_timeout_seconds),
            ) as response:
                body = await response.content.read(MAX_TOKEN_RESPONSE_BYTES)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = "did not answer in time" if isinstance(exc, TimeoutError) else "is unreachable"
            raise TokenUnavailable(f"the token endpoint {reason}") from exc
        try:
            return parse_grant(status, body, config.default_token_lifetime_seconds)
        except TokenError as exc:
            if exc.description and secret:
                exc.description = exc.description.replace(secret, "[redacted]")
            raise
