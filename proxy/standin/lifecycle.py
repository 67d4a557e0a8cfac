"""Task statuses and how a task moves through them on the clock: pure rules, no state.

Published numbers (from the vendor's docs): 19 Deleting, 20 Deleted, 30 QueuedForPreProcessing,
31 PreProcessingInProgress, 32 PreProcessingFailed, 33 PreProcessingDownloadFailed,
34 PreProcessingSuccessful, 35 PreProcessingGetPagesFailed.

The later stages exist but their numbers are NOT published; these are the stand-in's OWN and a
client must not rely on them against the real service: 40 RecognitionInProgress, 50 ToReview,
60 Processed. The integration statuses (0 None, 1 Pending, 2 Succeeded, 3 Failed) are the
stand-in's own too.

Timeline, in steps of `step_seconds` since the task was created or last restarted:

    0 queued (30) -> 1 pre-processing (31) -> 2 successful (34), or download failed (33, final)
    -> 3 recognition (40) -> 4 to review (50) -> 5 reviewed: archived as processed (60)

"Reviewed" is automatic. Without a webhook the task is processed at step 5. With a webhook the
export is sent at step 5; a 2xx reply archives the task (60), anything else sends it back to
review (50) to be reviewed, and sent, again one step later, up to `webhook_max_attempts` times.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import urlsplit


class TaskStatus(enum.IntEnum):
    """`taskStatus`; 40, 50 and 60 are the stand-in's own numbers (see the module docstring)."""

    DELETING = 19
    DELETED = 20
    QUEUED_FOR_PRE_PROCESSING = 30
    PRE_PROCESSING_IN_PROGRESS = 31
    PRE_PROCESSING_FAILED = 32
    PRE_PROCESSING_DOWNLOAD_FAILED = 33
    PRE_PROCESSING_SUCCESSFUL = 34
    PRE_PROCESSING_GET_PAGES_FAILED = 35
    RECOGNITION_IN_PROGRESS = 40
    TO_REVIEW = 50
    PROCESSED = 60


class IntegrationStatus(enum.IntEnum):
    """`integrationStatus`: how the export webhook went; all four numbers are the stand-in's own."""

    NONE = 0
    PENDING = 1
    SUCCEEDED = 2
    FAILED = 3


def status_text(status: enum.IntEnum) -> str:
    """The PascalCase name the API puts next to the number, e.g. `QueuedForPreProcessing`."""
    return "".join(word.capitalize() for word in status.name.split("_"))


# Step at which each stage begins, counted from the (re)start of processing.
_STAGES = (
    (1, TaskStatus.PRE_PROCESSING_IN_PROGRESS),
    (2, TaskStatus.PRE_PROCESSING_SUCCESSFUL),
    (3, TaskStatus.RECOGNITION_IN_PROGRESS),
    (4, TaskStatus.TO_REVIEW),
)
DOWNLOAD_STEP = 2
REVIEW_DONE_STEP = 5


def download_fails(url: str) -> bool:
    """Whether fetching `context.url` "fails": not http(s), no host, or containing `unreadable`."""
    parts = urlsplit(url.strip())
    return (
        parts.scheme not in ("http", "https") or not parts.hostname or "unreadable" in url.lower()
    )


def stage_at(elapsed_seconds: float, step_seconds: float, *, fails_download: bool) -> TaskStatus:
    """Where processing stands `elapsed_seconds` after it (re)started, before any review."""
    status = TaskStatus.QUEUED_FOR_PRE_PROCESSING
    for step, stage in _STAGES:
        if elapsed_seconds < step * step_seconds:
            break
        if step == DOWNLOAD_STEP and fails_download:
            return TaskStatus.PRE_PROCESSING_DOWNLOAD_FAILED
        status = stage
    return status


@dataclass(frozen=True)
class Lifecycle:
    """The timing rules of one stand-in: its step and whether review archives on its own."""

    step_seconds: float
    auto_archive: bool

    def status(
        self, elapsed_seconds: float, *, fails_download: bool, archived: bool, review_done: bool
    ) -> TaskStatus:
        """The task status `elapsed_seconds` after processing (re)started.

        `review_done` says the automatic review has finished; it archives the task only when
        there is no webhook (with one, the webhook's reply decides, through `archived`).
        """
        if archived:
            return TaskStatus.PROCESSED
        stage = stage_at(elapsed_seconds, self.step_seconds, fails_download=fails_download)
        if stage is TaskStatus.TO_REVIEW and self.auto_archive and review_done:
            return TaskStatus.PROCESSED
        return stage

    def review_due(self, started_at: float) -> float:
        """When the first automatic review of a task started at `started_at` finishes."""
        return started_at + REVIEW_DONE_STEP * self.step_seconds

    def pre_processing_started(self, elapsed_seconds: float) -> bool:
        """True once pre-processing has begun (for `preProcessingStartedOn`)."""
        return elapsed_seconds >= self.step_seconds
