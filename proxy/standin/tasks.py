"""Tasks: what a create request asked for, the live task, its API view and list filters.

A task's status is never stored: `Task.status` computes it from the clock through the
`lifecycle.Lifecycle` rules, so moving an injected clock moves every task. What is stored is only
what the clock cannot know: restarts, whether the export webhook archived the task, and how its
deliveries went.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .lifecycle import IntegrationStatus, Lifecycle, TaskStatus, status_text
from .lifecycle import download_fails as _download_fails
from .query import Query
from .speakers import Speaker
from .timestamps import iso_seconds, iso_ticks

DEFAULT_EXTERNAL_INTEGRATION_STATUS = "never"
MAX_EXTERNAL_INTEGRATION_STATUS_LENGTH = 32
TASK_PROPERTIES = (
    "taskId",
    "workspaceId",
    "batchId",
    "taskNumber",
    "externalId",
    "displayName",
    "description",
    "createdOn",
    "taskStatus",
    "integrationStatus",
    "taskStatusText",
    "integrationStatusText",
    "totalPages",
    "restartCount",
    "preProcessingStartedOn",
    "externalIntegrationStatus",
)
"""The properties of a task status object, in the order the API writes them."""


@dataclass(frozen=True)
class TaskRequest:
    """A validated CreateTaskRequest; ids are checked against the organization separately."""

    url: str
    display_name: str | None = None
    description: str | None = None
    workspace_id: int | None = None
    batch_id: int | None = None
    priority: int = 1
    external_id: str | None = None
    transcript_language: str | None = None
    extras: dict[str, object] = field(default_factory=dict)


@dataclass
class Task:
    """One task and the little state the clock cannot derive."""

    task_id: int
    workspace_id: int
    task_number: int
    request: TaskRequest
    created_on: datetime
    started_at: float
    started_on: datetime
    review_due_at: float
    restart_count: int = 0
    external_integration_status: str = DEFAULT_EXTERNAL_INTEGRATION_STATUS
    archived: bool = False
    integration: IntegrationStatus = IntegrationStatus.NONE
    delivery_attempts: int = 0
    delivering: bool = False
    speakers: list[Speaker] = field(default_factory=list)

    @property
    def fails_download(self) -> bool:
        """True when the stand-in pretends `context.url` cannot be downloaded."""
        return _download_fails(self.request.url)

    @property
    def total_pages(self) -> int:
        """A stable, plausible page count (1-9) derived from the URL."""
        return zlib.crc32(self.request.url.encode()) % 9 + 1

    @property
    def display_name(self) -> str:
        """The requested name, else the URL's file name, else `Task <id>`."""
        if self.request.display_name:
            return self.request.display_name
        last = self.request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        return last if last and "." in last else f"Task {self.task_id}"

    def status(self, lifecycle: Lifecycle, now: float) -> TaskStatus:
        """The status at monotonic time `now`."""
        return lifecycle.status(
            now - self.started_at,
            fails_download=self.fails_download,
            archived=self.archived,
            review_done=now >= self.review_due_at,
        )

    def restart(self, lifecycle: Lifecycle, now: float, wall: datetime) -> None:
        """Reprocess from the start: edits and delivery history are lost, `restartCount` + 1."""
        self.restart_count += 1
        self.started_at, self.started_on = now, wall
        self.review_due_at = lifecycle.review_due(now)
        self.archived, self.delivering = False, False
        self.integration, self.delivery_attempts = IntegrationStatus.NONE, 0

    def view(self, lifecycle: Lifecycle, now: float) -> dict[str, object]:
        """The documented task status object."""
        status = self.status(lifecycle, now)
        started = lifecycle.pre_processing_started(now - self.started_at)
        pre_processing_on = self.started_on + timedelta(seconds=lifecycle.step_seconds)
        return {
            "taskId": self.task_id,
            "workspaceId": self.workspace_id,
            "batchId": self.request.batch_id,
            "taskNumber": self.task_number,
            "externalId": self.request.external_id,
            "displayName": self.display_name,
            "description": self.request.description,
            # .NET's seven fractional digits, like a batch's: one database writes both.
            "createdOn": iso_ticks(self.created_on),
            "taskStatus": int(status),
            "integrationStatus": int(self.integration),
            "taskStatusText": status_text(status),
            "integrationStatusText": status_text(self.integration),
            "totalPages": self.total_pages,
            "restartCount": self.restart_count,
            "preProcessingStartedOn": iso_seconds(pre_processing_on) if started else None,
            "externalIntegrationStatus": self.external_integration_status,
        }


@dataclass(frozen=True)
class TaskFilter:
    """The status-list filters; an empty set means "any"."""

    start: datetime | None = None
    end: datetime | None = None
    task_statuses: frozenset[int] = frozenset()
    integration_statuses: frozenset[int] = frozenset()
    workspace_ids: frozenset[int] = frozenset()
    external_statuses: frozenset[str] = frozenset()

    @classmethod
    def from_query(cls, query: Query) -> TaskFilter:
        """Read the filters; as documented, at least one of startDate and endDate is required."""
        start, end = query.date("startDate"), query.date("endDate")
        if query.first("startDate") is None and query.first("endDate") is None:
            query.fail("startDate", "At least one of startDate or endDate must be specified.")
        return cls(
            start=start,
            end=end,
            task_statuses=frozenset(query.integers("taskStatus")),
            integration_statuses=frozenset(query.integers("integrationStatus")),
            workspace_ids=frozenset(query.integers("workspaceId")),
            external_statuses=frozenset(
                v.casefold() for v in query.values("externalIntegrationStatus")
            ),
        )

    def matches(self, task: Task, view: dict[str, object]) -> bool:
        """Whether `task` (shown as `view`) passes every filter."""
        return (
            (self.start is None or task.created_on >= self.start)
            and (self.end is None or task.created_on <= self.end)
            and _member(view["taskStatus"], self.task_statuses)
            and _member(view["integrationStatus"], self.integration_statuses)
            and _member(task.workspace_id, self.workspace_ids)
            and _member(task.external_integration_status.casefold(), self.external_statuses)
        )


def _member(value: object, allowed: Iterable[object]) -> bool:
    allowed = frozenset(allowed)
    return not allowed or value in allowed
