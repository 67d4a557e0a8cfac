"""The access tokens the stand-in issued, for which organization, and whether one is still good.

Tokens are random, opaque (`secrets.token_urlsafe`) and kept only as SHA-256 digests, so the store
never holds, logs or shows a usable token. Each remembers the organization it was issued to,
which scopes every call made with it. A revoked token is remembered as revoked, so the
401 can say why it failed. Tokens that expired more than a lifetime ago are forgotten (they then
count as unknown), which keeps a long-running stand-in's memory bounded.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from typing import NamedTuple

TOKEN_BYTES = 32


class TokenVerdict(enum.Enum):
    """What the store knows about a presented token."""

    VALID = "valid"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"


class _Issued(NamedTuple):
    expiry: float
    organization: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Issued tokens and their expiry on the monotonic clock; times are passed in, not read."""

    def __init__(self, lifetime_seconds: int) -> None:
        self.lifetime_seconds = lifetime_seconds
        self._issued: dict[str, _Issued] = {}
        self._revoked: dict[str, float] = {}

    def __repr__(self) -> str:
        live, revoked = len(self._issued), len(self._revoked)
        return f"TokenStore(issued={live}, revoked={revoked})"

    def issue(self, now: float, organization: str) -> str:
        """A new token for `organization`, good until `now + lifetime_seconds`."""
        self._forget_stale(now)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._issued[_digest(token)] = _Issued(now + self.lifetime_seconds, organization)
        return token

    def check(self, token: str, now: float) -> tuple[TokenVerdict, str | None]:
        """Whether `token` is valid at `now`, and if so the organization it was issued to."""
        digest = _digest(token)
        if digest in self._revoked:
            return TokenVerdict.REVOKED, None
        issued = self._issued.get(digest)
        if issued is None:
            return TokenVerdict.UNKNOWN, None
        if now < issued.expiry:  # a token expires at exactly its lifetime
            return TokenVerdict.VALID, issued.organization
        return TokenVerdict.EXPIRED, None

    def verdict(self, token: str, now: float) -> TokenVerdict:
        """Whether `token` is valid at `now`; a token expires at exactly its lifetime."""
        return self.check(token, now)[0]

    def revoke_all(self) -> int:
        """Revoke every issued token; returns how many were revoked."""
        count = len(self._issued)
        self._revoked.update({digest: issued.expiry for digest, issued in self._issued.items()})
        self._issued.clear()
        return count

    def _forget_stale(self, now: float) -> None:
        horizon = now - self.lifetime_seconds
        for digest in [d for d, issued in self._issued.items() if issued.expiry < horizon]:
            del self._issued[digest]
        for digest in [d for d, expiry in self._revoked.items() if expiry < horizon]:
            del self._revoked[digest]
