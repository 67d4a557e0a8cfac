"""Typed keys for the state the application shares, declared in one place."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
from aiohttp import web

from proxy.exchange import Observer
from proxy.inspector.buffer import Buffer
from proxy.metrics import Metrics
from proxy.reload import Live
from proxy.tokens import TokenCache

# The configuration and access rules in force: a SIGHUP replaces what LIVE holds.
LIVE = web.AppKey("live", Live)
METRICS = web.AppKey("metrics", Metrics)
TOKENS = web.AppKey("tokens", TokenCache)
UPSTREAM_SESSION = web.AppKey("upstream_session", aiohttp.ClientSession)
# A session that never reuses a connection: for the one retry after a stale keep-alive one.
FRESH_SESSION = web.AppKey("fresh_session", aiohttp.ClientSession)
# Who is told about each finished exchange: the access log, the metrics, the inspector.
OBSERVERS = web.AppKey("observers", Sequence[Observer])
# The inspector's last exchanges.
INSPECTOR = web.AppKey("inspector", Buffer)
