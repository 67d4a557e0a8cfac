"""Tasks move through their statuses on the injected clock."""

from __future__ import annotations

import pytest

from proxy.standin import StandinSettings
from proxy.standin.lifecycle import (
    IntegrationStatus,
    Lifecycle,
    TaskStatus,
    download_fails,
    stage_at,
    status_text,
)
from tests.standin_helpers import ClientFactory, start_standin


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (0.0, TaskStatus.QUEUED_FOR_PRE_PROCESSING),
        (1.99, TaskStatus.QUEUED_FOR_PRE_PROCESSING),
        (2.0, TaskStatus.PRE_PROCESSING_IN_PROGRESS),
        (4.0, TaskStatus.PRE_PROCESSING_SUCCESSFUL),
        (6.0, TaskStatus.RECOGNITION_IN_PROGRESS),
        (8.0, TaskStatus.TO_REVIEW),
        (1e9, TaskStatus.TO_REVIEW),
    ],
)
def test_stages_follow_the_step_timeline(elapsed: float, expected: TaskStatus) -> None:
    assert stage_at(elapsed, 2.0, fails_download=False) is expected


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (2.0, TaskStatus.PRE_PROCESSING_IN_PROGRESS),
        (4.0, TaskStatus.PRE_PROCESSING_DOWNLOAD_FAILED),
        (1e9, TaskStatus.PRE_PROCESSING_DOWNLOAD_FAILED),
    ],
)
def test_a_failed_download_stops_at_status_33(elapsed: float, expected: TaskStatus) -> None:
    assert stage_at(elapsed, 2.0, fails_download=True) is expected


def test_a_zero_step_finishes_at_once() -> None:
    assert stage_at(0.0, 0.0, fails_download=False) is TaskStatus.TO_REVIEW


@pytest.mark.parametrize(
    ("auto_archive", "archived", "review_done", "expected"),
    [
        (True, False, False, TaskStatus.TO_REVIEW),
        (True, False, True, TaskStatus.PROCESSED),
        (False, False, True, TaskStatus.TO_REVIEW),
        (False, True, False, TaskStatus.PROCESSED),
    ],
)
def test_review_archives_on_its_own_only_without_a_webhook(
    auto_archive: bool, archived: bool, review_done: bool, expected: TaskStatus
) -> None:
    lifecycle = Lifecycle(step_seconds=2.0, auto_archive=auto_archive)
    status = lifecycle.status(8.0, fails_download=False, archived=archived, review_done=review_done)
    assert status is expected


def test_the_first_review_is_done_five_steps_after_the_start() -> None:
    assert Lifecycle(step_seconds=2.0, auto_archive=True).review_due(100.0) == 110.0


@pytest.mark.parametrize(
    ("url", "fails"),
    [
        ("https://files.example.com/a.pdf", False),
        ("http://files.example.com/a.pdf", False),
        ("ftp://files.example.com/a.pdf", True),
        ("file:///etc/passwd", True),
        ("not a url", True),
        ("https://files.example.com/UNREADABLE.pdf", True),
    ],
)
def test_which_urls_fail_to_download(url: str, fails: bool) -> None:
    assert download_fails(url) is fails


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (TaskStatus.QUEUED_FOR_PRE_PROCESSING, "QueuedForPreProcessing"),
        (TaskStatus.PRE_PROCESSING_DOWNLOAD_FAILED, "PreProcessingDownloadFailed"),
        (TaskStatus.TO_REVIEW, "ToReview"),
        (IntegrationStatus.SUCCEEDED, "Succeeded"),
    ],
)
def test_status_texts(status: TaskStatus | IntegrationStatus, text: str) -> None:
    assert status_text(status) == text


async def test_a_task_progresses_as_the_clock_moves(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(step_seconds=10))
    await standin.create_task()
    seen = []
    for _ in range(6):
        task = await standin.status(1001)
        seen.append((task["taskStatus"], task["taskStatusText"]))
        standin.clock.advance(10)
    assert seen == [
        (30, "QueuedForPreProcessing"),
        (31, "PreProcessingInProgress"),
        (34, "PreProcessingSuccessful"),
        (40, "RecognitionInProgress"),
        (50, "ToReview"),
        (60, "Processed"),
    ]


async def test_pre_processing_start_time_appears_after_the_first_step(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(step_seconds=10))
    await standin.create_task()
    standin.clock.advance(10)
    assert (await standin.status(1001))["preProcessingStartedOn"] == "2024-05-01T12:00:10Z"


@pytest.mark.parametrize(
    "url", ["ftp://files.example.com/a.pdf", "https://files.example.com/unreadable.pdf"]
)
async def test_an_unreadable_url_ends_in_download_failed(
    aiohttp_client: ClientFactory, url: str
) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task(context={"url": url})
    standin.clock.advance(1000)
    task = await standin.status(1001)
    assert (task["taskStatus"], task["taskStatusText"]) == (33, "PreProcessingDownloadFailed")


async def test_restart_starts_the_timeline_again(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(step_seconds=10))
    await standin.create_task()
    standin.clock.advance(100)
    await standin.api("PATCH", "/sdtask/restartprocessing?taskId=1001")
    assert (await standin.status(1001))["taskStatus"] == 30
    standin.clock.advance(10)
    restarted = await standin.status(1001)
    assert restarted["taskStatus"] == 31
    assert restarted["preProcessingStartedOn"] == "2024-05-01T12:01:50Z"
