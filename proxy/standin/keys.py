"""Typed keys for everything the stand-in shares between handlers, in one place: application
keys for its state, and the request key that scopes an API call to its organization."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .clocks import Clock, WallClock

if TYPE_CHECKING:
    from .fault_switch import FaultSwitch
    from .lifecycle import Lifecycle
    from .organization import Organization
    from .organizations import Organizations
    from .replay import Replay
    from .settings import StandinSettings
    from .tokens import TokenStore
    from .webhooks import WebhookDispatcher

__all__ = ["CLOCK", "FAULTS", "LIFECYCLE", "ORGANIZATION", "ORGANIZATIONS", "REPLAY", "SETTINGS",
           "TOKENS", "WALL_CLOCK", "WEBHOOKS", "Clock", "WallClock"]  # fmt: skip

SETTINGS: web.AppKey[StandinSettings] = web.AppKey("settings")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
WALL_CLOCK: web.AppKey[WallClock] = web.AppKey("wall_clock")
TOKENS: web.AppKey[TokenStore] = web.AppKey("tokens")
FAULTS: web.AppKey[FaultSwitch] = web.AppKey("faults")
ORGANIZATIONS: web.AppKey[Organizations] = web.AppKey("organizations")
LIFECYCLE: web.AppKey[Lifecycle] = web.AppKey("lifecycle")
WEBHOOKS: web.AppKey[WebhookDispatcher] = web.AppKey("webhooks")
REPLAY: web.AppKey[Replay] = web.AppKey("replay")

ORGANIZATION: web.RequestKey[Organization] = web.RequestKey("organization")
"""The organization whose token an `/api` request carries; set by the Bearer check."""
