"""The export webhook: POST a task's export when its review is done, as SmartDocumentor does.

When a task's automatic review completes (see `lifecycle`), the dispatcher POSTs the export
document as JSON to `webhook_url`. As documented by the vendor, a 2xx reply archives the task
(status 60 here); any other status, a timeout or a connection failure sends it back to review
(50) with `integrationStatus` Failed. The stand-in then "reviews" it again one step later and
re-sends, at most `webhook_max_attempts` times in all; after that the task stays in review until
`restartprocessing`. Redirects are not followed: the vendor archives only on a 2xx, and a 3xx is
not one (following it would also send the export somewhere nobody configured). Every attempt is
recorded for `GET /_standin/webhooks` (URL without its query string, which may hold a secret).

Nothing waits on a client poll: a ticker in `webhook_context` checks for due deliveries every
step (at least every 50 ms, at most every second). Deliveries run as background tasks on one
`ClientSession` owned by the same context, so a slow receiver never blocks an API request.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import web

from .clocks import Clock, WallClock
from .exports import webhook_payload
from .lifecycle import IntegrationStatus, Lifecycle, TaskStatus
from .organization import Organization
from .organizations import Organizations
from .tasks import Task
from .timestamps import iso_seconds

if TYPE_CHECKING:
    from .settings import StandinSettings

logger = logging.getLogger(__name__)

MIN_TICK_SECONDS = 0.05
MAX_TICK_SECONDS = 1.0
MAX_RECORDS = 200
MAX_RECORDED_BODY = 500


def tick_seconds(step_seconds: float) -> float:
    """How often the ticker looks for due deliveries: every step, within [50 ms, 1 s]."""
    return min(max(step_seconds, MIN_TICK_SECONDS), MAX_TICK_SECONDS)


def redact(url: str) -> str:
    """`url` without query or fragment, safe to log and show."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def delivery_due(task: Task, lifecycle: Lifecycle, now: float, max_attempts: int) -> bool:
    """Whether `task` has been reviewed and its export should be sent now."""
    return (
        not task.archived
        and not task.delivering
        and task.delivery_attempts < max_attempts
        and now >= task.review_due_at
        and task.status(lifecycle, now) is TaskStatus.TO_REVIEW
    )


@dataclass(frozen=True)
class DeliveryRecord:
    """One webhook attempt as the admin path shows it."""

    task_id: int
    attempt: int
    at: str
    status: int | None
    error: str | None
    response_body: str
    archived: bool

    def view(self) -> dict[str, object]:
        """The admin path's JSON shape."""
        return {
            "taskId": self.task_id,
            "attempt": self.attempt,
            "at": self.at,
            "status": self.status,
            "error": self.error,
            "responseBody": self.response_body,
            "outcome": "archived" if self.archived else "back to review",
        }


class WebhookDispatcher:
    """Sends due exports, one background task per delivery, and records every attempt."""

    def __init__(
        self,
        url: str | None,
        organizations: Organizations,
        lifecycle: Lifecycle,
        clocks: tuple[Clock, WallClock],
        max_attempts: int,
    ) -> None:
        self.url = url
        self.records: deque[DeliveryRecord] = deque(maxlen=MAX_RECORDS)
        self._organizations, self._lifecycle = organizations, lifecycle
        self._clock, self._wall_clock = clocks
        self._max_attempts = max_attempts
        self._session: aiohttp.ClientSession | None = None
        self._running: set[asyncio.Task[None]] = set()

    def attach(self, session: aiohttp.ClientSession) -> None:
        """Start sending through `session` (owned by `webhook_context`)."""
        self._session = session

    def dispatch_due(self) -> int:
        """Start a delivery for every task whose export is due; returns how many started."""
        if self._session is None or self.url is None:
            return 0
        now = self._clock()
        due = [
            (organization, task)
            for organization in self._organizations
            for task in organization.tasks.values()
            if delivery_due(task, self._lifecycle, now, self._max_attempts)
        ]
        for organization, task in due:
            task.delivering, task.integration = True, IntegrationStatus.PENDING
            task.delivery_attempts += 1
            job = asyncio.create_task(self._deliver(self._session, self.url, organization, task))
            self._running.add(job)
            job.add_done_callback(self._running.discard)
        return len(due)

    async def aclose(self) -> None:
        """Stop sending: cancel deliveries in flight and wait for them to end."""
        self._session = None
        for job in self._running:
            job.cancel()
        if self._running:
            await asyncio.wait(self._running)

    def describe(self) -> dict[str, object]:
        """The webhook target and recorded attempts, for the admin path."""
        return {
            "url": redact(self.url) if self.url else None,
            "maxAttempts": self._max_attempts,
            "deliveries": [record.view() for record in self.records],
        }

    async def _deliver(
        self, session: aiohttp.ClientSession, url: str, organization: Organization, task: Task
    ) -> None:
        generation, attempt = task.restart_count, task.delivery_attempts
        transcript = organization.workspace(task.workspace_id).transcript
        status, error, body = await self._post(session, url, task, transcript=transcript)
        if task.restart_count != generation:
            return  # restarted meanwhile: this outcome belongs to a run that no longer exists
        archived = status is not None and 200 <= status < 300
        self._settle(task, archived)
        at = iso_seconds(self._wall_clock())
        self.records.append(
            DeliveryRecord(task.task_id, attempt, at, status, error, body, archived)
        )
        outcome = "archived" if archived else "back to review"
        logger.info(
            "webhook %s task %d attempt %d: %s, %s",
            redact(url),
            task.task_id,
            attempt,
            status or error,
            outcome,
        )

    async def _post(
        self, session: aiohttp.ClientSession, url: str, task: Task, *, transcript: bool
    ) -> tuple[int | None, str | None, str]:
        payload = webhook_payload(task, transcript=transcript, wall=self._wall_clock())
        try:
            async with session.post(url, json=payload, allow_redirects=False) as response:
                body = await response.text(errors="replace")
                return response.status, None, body[:MAX_RECORDED_BODY]
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Only the exception's type: its message may quote the URL, query string and all.
            return None, type(exc).__name__, ""

    def _settle(self, task: Task, archived: bool) -> None:
        task.delivering = False
        if archived:
            task.archived, task.integration = True, IntegrationStatus.SUCCEEDED
        else:
            task.integration = IntegrationStatus.FAILED
            task.review_due_at = self._clock() + self._lifecycle.step_seconds


async def _tick(dispatcher: WebhookDispatcher, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        dispatcher.dispatch_due()


def webhook_context(
    dispatcher: WebhookDispatcher, settings: StandinSettings
) -> Callable[[web.Application], AsyncIterator[None]]:
    """`cleanup_ctx`: the webhook `ClientSession` and the ticker, when a webhook is configured."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        if settings.webhook_url is None:
            yield
            return
        timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            dispatcher.attach(session)
            ticker = asyncio.create_task(_tick(dispatcher, tick_seconds(settings.step_seconds)))
            try:
                yield
            finally:
                ticker.cancel()
                await dispatcher.aclose()
                await asyncio.wait([ticker])

    return context
