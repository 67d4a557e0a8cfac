"""The access tokens the stand-in issued, and whether a presented token is still good.

Tokens are random, opaque (`secrets.token_urlsafe`) and kept only as SHA-256 digests, so the store
never holds, logs or shows a usable token. A revoked token is remembered as revoked, so the
401 can say why it failed. Tokens that expired more than a lifetime ago are forgotten (they then
count as unknown), which keeps a long-running stand-in's memory bounded.
"""

from __future__ import annotations

import enum
import hashlib
import secrets

TOKEN_BYTES = 32


class TokenVerdict(enum.Enum):
    """What the store knows about a presented token."""

    VALID = "valid"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Issued tokens and their expiry on the monotonic clock; times are passed in, not read."""

    def __init__(self, lifetime_seconds: int) -> None:
        self.lifetime_seconds = lifetime_seconds
        self._expiry_by_digest: dict[str, float] = {}
        self._revoked: dict[str, float] = {}

    def __repr__(self) -> str:
        live, revoked = len(self._expiry_by_digest), len(self._revoked)
        return f"TokenStore(issued={live}, revoked={revoked})"

    def issue(self, now: float) -> str:
        """A new token, good until `now + lifetime_seconds`."""
        self._forget_stale(now)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._expiry_by_digest[_digest(token)] = now + self.lifetime_seconds
        return token

    def verdict(self, token: str, now: float) -> TokenVerdict:
        """Whether `token` is valid at `now`; a token expires at exactly its lifetime."""
        digest = _digest(token)
        if digest in self._revoked:
            return TokenVerdict.REVOKED
        expiry = self._expiry_by_digest.get(digest)
        if expiry is None:
            return TokenVerdict.UNKNOWN
        return TokenVerdict.VALID if now < expiry else TokenVerdict.EXPIRED

    def revoke_all(self) -> int:
        """Revoke every issued token; returns how many were revoked."""
        count = len(self._expiry_by_digest)
        self._revoked.update(self._expiry_by_digest)
        self._expiry_by_digest.clear()
        return count

    def _forget_stale(self, now: float) -> None:
        horizon = now - self.lifetime_seconds
        for table in (self._expiry_by_digest, self._revoked):
            for digest in [d for d, expiry in table.items() if expiry < horizon]:
                del table[digest]
