"""The client secret's expiry date: days left, and when to warn.

The vendor lets a secret live a year at most and never reminds anyone; a proxy that says so
in its log and its metrics a month ahead turns an outage into a routine rotation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime

from aiohttp import web

from proxy import tasks
from proxy.keys import LIVE, METRICS

logger = logging.getLogger(__name__)

WARN_DAYS = 30
CHECK_EVERY_SECONDS = 6 * 3600
Today = Callable[[], date]


def today_utc() -> date:
    return datetime.now(UTC).date()


def days_left(expires: date, today: date) -> int:
    return (expires - today).days


def warning(expires: date | None, today: date) -> str | None:
    """The log line to write about the secret's expiry, if one is due."""
    if expires is None:
        return None
    left = days_left(expires, today)
    if left < 0:
        return f"the client secret expired on {expires}: generate a new one for the organization"
    if left < WARN_DAYS:
        return (
            f"the client secret expires on {expires}, in {left} days: generate a new one and "
            "write it into the secret file (no restart needed)"
        )
    return None


def watch(today: Today = today_utc) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context: each organization's days-left gauge, and a warning at start-up and
    every few hours."""

    async def watching(app: web.Application) -> AsyncIterator[None]:
        live, metrics = app[LIVE], app[METRICS]

        def left_of(name: str) -> Callable[[], float]:
            def left() -> float:
                # The date in force now: a reload may have changed it.
                expires = live.config.organization(name).secret_expires
                return float(days_left(expires, today())) if expires else float("nan")

            return left

        for organization in live.config.organizations:
            metrics.follow(
                metrics.secret_expiry_days_of(organization.name), left_of(organization.name)
            )

        async def warn_now_and_then() -> None:
            while True:
                config = live.config
                for organization in config.organizations:
                    said = warning(organization.secret_expires, today())
                    if said:
                        whose = "" if config.single_organization else f"{organization.name}: "
                        logger.warning("%s%s", whose, said)
                await asyncio.sleep(CHECK_EVERY_SECONDS)

        async with tasks.owned(warn_now_and_then(), "secret expiry warnings"):
            yield

    return watching
