"""Typed keys for everything the stand-in shares between handlers, in one place: application
keys for its state, and the request key that scopes an API call to its organization."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .fault_switch import FaultSwitch
    from .lifecycle import Lifecycle
    from .organization import Organization
    from .organizations import Organizations
    from .replay import Replay
    from .settings import StandinSettings
    from .tokens import TokenStore
    from .webhooks import WebhookDispatcher

Clock = Callable[[], float]
"""Monotonic seconds: token expiry, task progression, fault windows."""

WallClock = Callable[[], datetime]
"""Aware UTC datetimes: `createdOn` and other times the API shows."""

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
