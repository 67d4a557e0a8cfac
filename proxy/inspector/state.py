"""The proxy's state at a glance, for the page's top panel, and the secrets a scrubber needs.

Per organization: its token (held or not, seconds until it expires, the last fetch and how it
ended) and the days until its client secret expires. :func:`organizations` is the one place
that knows which organizations there are and where their token caches live.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web

from proxy.config import Organization as Settings
from proxy.inspector.buffer import STATUS_CLASSES, Buffer
from proxy.keys import LIVE, METRICS, PEER_TOKENS, TOKEN_CACHES
from proxy.metrics import Metrics
from proxy.secret_expiry import days_left, today_utc
from proxy.tokens import TokenCache

Document = dict[str, object]


@dataclass(frozen=True)
class Organization:
    """One organization: its name, its token cache and the settings it runs with."""

    name: str
    tokens: TokenCache
    settings: Settings


def organizations(app: web.Application) -> list[Organization]:
    """Every organization the proxy holds a token for, in the order configured."""
    caches = app[TOKEN_CACHES]
    return [
        Organization(settings.name, caches[settings.name], settings)
        for settings in app[LIVE].config.organizations
        if settings.name in caches
    ]


def organization_state(organization: Organization) -> Document:
    tokens, expires = organization.tokens, organization.settings.secret_expires
    last, error = tokens.last_fetch, tokens.last_error
    return {
        "name": organization.name,
        "token": {
            "held": tokens.current() is not None,
            "expiresInSeconds": round(tokens.seconds_until_expiry()),
            "lastFetch": None
            if last is None
            else {"secondsAgo": round(last[0], 1), "outcome": last[1]},
            # A TokenError's detail is written by the proxy, never by the endpoint.
            "lastError": error.detail if error is not None else None,
        },
        "secretExpires": expires.isoformat() if expires else None,
        "secretExpiresInDays": days_left(expires, today_utc()) if expires else None,
    }


def request_counts(metrics: Metrics) -> dict[str, int]:
    """API requests answered since start, by status class (from the metrics, so the page and
    the dashboards agree)."""
    counts = dict.fromkeys(STATUS_CLASSES, 0)
    for family in metrics.requests.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                kind = sample.labels["status"][:1] + "xx"
                counts[kind] = counts.get(kind, 0) + int(sample.value)
    return counts


def state(app: web.Application, buffer: Buffer) -> Document:
    config, held = app[LIVE].config, organizations(app)
    return {
        # Passive, unlike /_proxy/readyz: looking at the page never fetches a token.
        "ready": all(organization.tokens.current() is not None for organization in held),
        "upstream": str(config.upstream),
        "organizations": [organization_state(organization) for organization in held],
        "requests": request_counts(app[METRICS]),
        "inspector": {
            "exchanges": len(buffer),
            "capacity": buffer.capacity,
            "bodies": config.keeps_bodies,
        },
    }


def held_secrets(app: web.Application) -> Iterator[str]:
    """Every secret the proxy holds now: each organization's recent tokens and client
    secret, and the inbound keys."""
    for organization in organizations(app):
        # Replaced tokens too: one stays valid upstream past the refresh that replaced it, and
        # the buffer may hold exchanges from before that refresh.
        yield from organization.tokens.recent()
        config = organization.settings
        if config.client_secret:
            yield config.client_secret
        if config.client_secret_file is not None:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                yield config.client_secret_file.read_text(encoding="utf-8").strip()
    # The other workers' tokens, in worker 1 of several (proxy.inspector.shared).
    yield from app.get(PEER_TOKENS, ())
    keys = app[LIVE].access.keys
    if keys is not None:
        for name in sorted(keys.names):
            entry = keys.named(name)
            if entry is not None:
                yield entry.key
