"""Typed keys for the state the application shares, declared in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import aiohttp
from aiohttp import web

from proxy.exchange import Observer
from proxy.inspector.buffer import Buffer
from proxy.inspector.shared import PeerTokens, Relay
from proxy.limits import InFlight, ReplayBudget
from proxy.metrics import Metrics
from proxy.organizations import Listeners
from proxy.reload import Live
from proxy.tokens import TokenCache

# The configuration and access rules in force: a SIGHUP replaces what LIVE holds.
LIVE = web.AppKey("live", Live)
METRICS = web.AppKey("metrics", Metrics)
# One token cache per organization, by name.
TOKEN_CACHES = web.AppKey("token_caches", Mapping[str, TokenCache])
# Which organization each listening socket serves (set before the application starts).
LISTENERS = web.AppKey("listeners", Listeners)
UPSTREAM_SESSION = web.AppKey("upstream_session", aiohttp.ClientSession)
# A session that never reuses a connection: for the one retry after a stale keep-alive one.
FRESH_SESSION = web.AppKey("fresh_session", aiohttp.ClientSession)
# Who is told about each finished exchange: the access log, the metrics, the inspector.
OBSERVERS = web.AppKey("observers", Sequence[Observer])
# The limits every request shares (see proxy.limits and proxy.bodies).
REPLAY_BUDGET = web.AppKey("replay_budget", ReplayBudget)
IN_FLIGHT = web.AppKey("in_flight", InFlight)
# Pooled upstream connections that streamed request bodies may hold at once.
STREAMING_SLOTS = web.AppKey("streaming_slots", asyncio.Semaphore)
# The inspector's last exchanges.
INSPECTOR = web.AppKey("inspector", Buffer)
# With several workers, in every worker but the first: worker 1 answers for the inspector.
INSPECTOR_RELAY = web.AppKey("inspector_relay", Relay)
# With several workers, in worker 1: the others' recent tokens, for the inspector's scrubber.
PEER_TOKENS = web.AppKey("peer_tokens", PeerTokens)
