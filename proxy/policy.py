"""Pure rules for resending and retrying, each driven by a table in the tests, no sockets.

- :func:`after_401`: what a 401 from the upstream leads to (httpx's ``auth_flow`` idea, kept
  to a decision).
- :func:`may_retry_stale`: whether a request that met a dead keep-alive connection is sent
  again.
- :func:`replayable`: whether a body can be kept in memory so that either can happen.
"""

from __future__ import annotations

import enum

# A 401 may start at most one token refresh in this many seconds: otherwise any client could
# make the proxy fetch a token per request by asking for a path that always answers 401.
RESEND_REFRESH_INTERVAL_SECONDS = 5.0

# RFC 9110 §9.2.2: a request with one of these methods may be sent twice to the same effect.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class After401(enum.Enum):
    USE_CURRENT = "resend with the token that has replaced the rejected one"
    JOIN_FETCH = "wait for the token fetch in flight, then resend with its token"
    REFRESH = "fetch a new token, then resend with it"
    GIVE_UP = "pass the 401 on to the client"


def after_401(
    *,
    replaced: bool,
    fetch_in_flight: bool,
    unproven: bool,
    seconds_since_last_refresh: float,
    interval_seconds: float = RESEND_REFRESH_INTERVAL_SECONDS,
) -> After401:
    """What to do when the upstream rejects a token.

    ``replaced``: another token is already cached. ``unproven``: the rejected token was itself
    fetched in answer to a 401 and has not been accepted since, so the credentials or the path,
    not the token, are the problem. ``seconds_since_last_refresh``: since a 401 last started a
    refresh.
    """
    if replaced:
        return After401.USE_CURRENT
    if fetch_in_flight:
        return After401.JOIN_FETCH
    if unproven or seconds_since_last_refresh < interval_seconds:
        return After401.GIVE_UP
    return After401.REFRESH


def may_retry_stale(method: str, replayable: bool) -> bool:
    """May a request that failed on a connection the upstream had closed be sent again?

    Only an idempotent one whose body is still at hand: the upstream may have received the
    first attempt, and only for these methods is a second one harmless (RFC 9110 §9.2.2).
    """
    return replayable and method in IDEMPOTENT_METHODS


def replayable(content_length: int | None, has_body: bool, limit: int) -> bool:
    """Can the body be kept in memory so the request can be sent again?

    Yes when there is none, or when its announced length is within the limit. A body of unknown
    length (chunked) is streamed: buffering it could take unbounded memory.
    """
    if not has_body:
        return True
    return content_length is not None and content_length <= limit
