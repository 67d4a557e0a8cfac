"""The token rules, as tables: no network, no clock."""

from __future__ import annotations

import json
import math

import pytest

from proxy.errors import TokenRejected, TokenUnavailable
from proxy.grants import lifetime_of, parse_grant
from proxy.tokens import BACKOFF_MAX_SECONDS, backoff_seconds, schedule


@pytest.mark.parametrize(
    ("expires_in", "expected"),
    [
        (3600, 3600.0),
        (90.5, 90.5),
        ("3600", 3600.0),
        (" 120 ", 120.0),
        ("soon", 777.0),
        (None, 777.0),
        (True, 777.0),
        ([3600], 777.0),
        (0, 0.0),
        (-5, -5.0),
        ("nan", 777.0),
        (math.inf, 777.0),
    ],
)
def test_lifetime_of_tolerates_what_endpoints_send(expires_in: object, expected: float) -> None:
    assert lifetime_of(expires_in, 777.0) == expected


@pytest.mark.parametrize(
    ("lifetime", "margin", "refresh_at", "expires_at"),
    [
        (3600, 300, 3300, 3590),  # refresh at lifetime - margin; expire 10 s early
        (60, 300, 30, 54),  # margin longer than the lifetime: refresh at half-life
        (20, 0, 18, 18),  # margin 0: refresh when it is treated as expired
        (0, 300, 0, 0),  # not cached
        (-1, 300, 0, 0),
    ],
)
def test_schedule(lifetime: float, margin: float, refresh_at: float, expires_at: float) -> None:
    assert schedule(0.0, lifetime, margin) == pytest.approx((refresh_at, expires_at))


@pytest.mark.parametrize(
    ("failures", "jitter", "expected"),
    [(1, 1.0, 1.0), (1, 0.0, 0.5), (2, 1.0, 2.0), (4, 1.0, 8.0), (30, 1.0, BACKOFF_MAX_SECONDS)],
)
def test_backoff_is_exponential_capped_and_jittered(
    failures: int, jitter: float, expected: float
) -> None:
    assert backoff_seconds(failures, jitter) == expected


def _body(data: object) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", "BEARER", None])
def test_parse_grant_accepts_bearer_in_any_case(token_type: str | None) -> None:
    data: dict[str, object] = {"access_token": "abc", "expires_in": "60"}
    if token_type is not None:
        data["token_type"] = token_type
    grant = parse_grant(200, _body(data), 3600)
    assert (grant.access_token, grant.lifetime_seconds) == ("abc", 60.0)
    assert "abc" not in repr(grant)


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (400, {"error": "invalid_client"}, TokenRejected, "invalid_client"),
        (401, {"error": "invalid_client"}, TokenRejected, "invalid_client"),
        (400, {"error": "invalid_scope"}, TokenRejected, "invalid_scope"),
        (404, "not json", TokenRejected, None),
        (200, {"token_type": "Bearer"}, TokenUnavailable, None),
        (200, {"access_token": "", "token_type": "Bearer"}, TokenUnavailable, None),
        (200, {"access_token": "a", "token_type": "mac"}, TokenRejected, None),
        (500, {"error": "server_error"}, TokenUnavailable, None),
        (503, "", TokenUnavailable, None),
        (429, {}, TokenUnavailable, None),
    ],
)
def test_parse_grant_failures(
    status: int, body: object, error: type[Exception], code: str | None
) -> None:
    raw = body.encode() if isinstance(body, str) else _body(body)
    with pytest.raises(error) as caught:
        parse_grant(status, raw, 3600)
    assert getattr(caught.value, "code", None) == code
