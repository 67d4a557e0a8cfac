"""Typed keys for the state the application shares, declared in one place."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from proxy.config import Config
from proxy.metrics import Metrics
from proxy.tokens import TokenCache

CONFIG = web.AppKey("config", Config)
METRICS = web.AppKey("metrics", Metrics)
TOKENS = web.AppKey("tokens", TokenCache)
UPSTREAM_SESSION = web.AppKey("upstream_session", aiohttp.ClientSession)

# Set by the forwarder, read by the access log: was this request resent after a 401, and how
# many body bytes were relayed to the client?
RESENT = web.RequestKey("resent", bool)
BODY_BYTES = web.RequestKey("body_bytes", int)
