"""Assembly of the stand-in application: the one place its parts are put together.

Middlewares, outermost first: Problem Details for errors, then the fault switches (latency and
refusals), then the Bearer-token check for `/api`, then the replay of recorded answers
(`--replay`). Unknown paths under `/api` therefore answer 401 without a token, a recorded answer
if there is one, and a 404 problem otherwise.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from aiohttp import web

from . import admin, oauth, sdbatch, sdtask, sdworkspace, tenant, transcripts
from .bearer import bearer_middleware
from .fault_switch import FaultSwitch, fault_middleware, release_on_shutdown
from .faults import FAULT_FIELDS, FaultState, with_changes
from .keys import (
    CLOCK,
    FAULTS,
    LIFECYCLE,
    ORGANIZATIONS,
    REPLAY,
    SETTINGS,
    TOKENS,
    WALL_CLOCK,
    WEBHOOKS,
    Clock,
    WallClock,
)
from .lifecycle import Lifecycle
from .organizations import Organizations
from .problems import problem_middleware
from .replay import Replay, replay_middleware
from .settings import StandinSettings
from .timestamps import utc_now
from .tokens import TokenStore
from .webhooks import WebhookDispatcher, redact, webhook_context

logger = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1024 * 1024
"""Largest request body the stand-in reads; a larger one is answered 413.

The vendor documents no limit (Kestrel's own default would be about 28.6 MiB). 1 MiB, aiohttp's
default made explicit here so the README can name it, is far above the API's small JSON payloads
and keeps a careless client from filling the stand-in's memory.
"""


def _initial_faults(settings: StandinSettings, now: float) -> FaultState:
    switches = {name: getattr(settings, name) for name in FAULT_FIELDS}
    return with_changes(FaultState(), switches, now)


def _add_state(
    app: web.Application, settings: StandinSettings, clock: Clock, wall: WallClock
) -> None:
    app[SETTINGS], app[CLOCK], app[WALL_CLOCK] = settings, clock, wall
    app[LIFECYCLE] = Lifecycle(settings.step_seconds, auto_archive=settings.webhook_url is None)
    app[TOKENS] = TokenStore(settings.token_lifetime_seconds)
    app[FAULTS] = FaultSwitch(_initial_faults(settings, clock()), clock)
    app[ORGANIZATIONS] = Organizations(settings, wall())
    app[WEBHOOKS] = WebhookDispatcher(
        settings.webhook_url,
        app[ORGANIZATIONS],
        app[LIFECYCLE],
        (clock, wall),
        settings.webhook_max_attempts,
    )
    app[REPLAY] = Replay(settings.replay)


def create_standin_app(
    settings: StandinSettings,
    *,
    clock: Clock | None = None,
    wall_clock: WallClock | None = None,
) -> web.Application:
    """A SmartDocumentor stand-in with in-memory state.

    `clock` is monotonic seconds (default `time.monotonic`) for token expiry, task progression
    and fault windows; `wall_clock` gives aware UTC datetimes for `createdOn` and friends. Tests
    inject both to move time instead of sleeping.
    """
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    _add_state(app, settings, clock or time.monotonic, wall_clock or utc_now)
    # Middlewares get their state handed in, so the modules that define it import no keys.
    app.middlewares.extend(
        (problem_middleware, fault_middleware(app[FAULTS]), bearer_middleware,
         replay_middleware(app[REPLAY]))
    )  # fmt: skip
    for module in (oauth, sdtask, sdbatch, sdworkspace, tenant, transcripts, admin):
        app.router.add_routes(module.routes)
    app.cleanup_ctx.append(webhook_context(app[WEBHOOKS], settings))
    app.on_shutdown.append(release_on_shutdown(app[FAULTS]))
    webhook = redact(settings.webhook_url) if settings.webhook_url else None
    logger.debug("stand-in assembled: %r, webhook %s", settings, webhook)
    if settings.replay:
        logger.info("replaying %r ahead of the simulation", settings.replay)
    return app
