"""Export documents: what `GetExportData`, `GetExportData/Transcript` and the webhook carry.

The shapes follow the vendor's documented field names with stand-in content: one "chunk" of
recognised text per page for documents; speaker-attributed segments plus an `exportedFileUrl`
for transcripts. File links point at `exports.standin.invalid`, a host that by definition
(RFC 2606) never resolves: like the real SAS links they expire (after 168 hours), unlike them they
cannot be downloaded.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .errors import Conflict, ValidationFailed
from .lifecycle import Lifecycle, TaskStatus, status_text
from .tasks import Task
from .timestamps import iso_seconds

EXPORT_HOST = "https://exports.standin.invalid"
FILE_LINK_LIFETIME = timedelta(hours=168)
_EXPORTABLE = (TaskStatus.TO_REVIEW, TaskStatus.PROCESSED)


def _common(task: Task) -> dict[str, object]:
    return {
        "taskId": task.task_id,
        "originalFileUrl": task.request.url,
        "workspaceId": task.workspace_id,
        "batchId": task.request.batch_id,
        "taskNumber": task.task_number,
        "externalId": task.request.external_id,
        "displayName": task.display_name,
        "description": task.request.description,
        "totalPages": task.total_pages,
        "lastCheckoutByUserName": None,
        "lastCheckedOutBy": None,
        "lastCheckedOutUntil": None,
    }


def _entity(page: int) -> dict[str, object]:
    return {
        "type": "Paragraph",
        "category": "Text",
        "groupName": f"Page {page}",
        "pageNumber": page,
        "chunkNumber": page,
        "customFormValues": None,
        "text": f"Stand-in recognised text of page {page}.",
        "confidence": 0.99,
    }


def document_export(task: Task) -> dict[str, object]:
    """The `GetExportData` document for a task."""
    chunks = [{"entities": [_entity(page)]} for page in range(1, task.total_pages + 1)]
    return {**_common(task), "chunks": chunks}


def transcript_export(task: Task, wall: datetime) -> dict[str, object]:
    """The `GetExportData/Transcript` document: one segment per minute, speakers in turn."""
    speakers = task.speakers or []
    segments = [
        {
            "speakerId": speakers[minute % len(speakers)].speaker_id if speakers else None,
            "start": f"00:{minute:02d}:00.000",
            "end": f"00:{minute + 1:02d}:00.000",
            "text": f"Stand-in transcript of minute {minute + 1}.",
        }
        for minute in range(task.total_pages)
    ]
    sas = f"se={iso_seconds(wall + FILE_LINK_LIFETIME)}&sig=standin"
    return {
        **_common(task),
        "language": task.request.transcript_language or "en-US",
        "speakers": [speaker.view(with_default=True) for speaker in speakers],
        "segments": segments,
        "exportedFileUrl": f"{EXPORT_HOST}/transcripts/{task.task_id}.docx?{sas}",
    }


def check_exportable(task: Task, lifecycle: Lifecycle, now: float) -> None:
    """Raise `Conflict` before the task reaches review: until then there is nothing to export."""
    status = task.status(lifecycle, now)
    if status not in _EXPORTABLE:
        where = f"{status_text(status)} ({int(status)})"
        raise Conflict(f"Task {task.task_id} has no export data yet: it is {where}.")


def check_transcript(task: Task, transcript_workspace: bool) -> None:
    """Raise `ValidationFailed` unless the task belongs to a transcript workspace."""
    if not transcript_workspace:
        raise ValidationFailed.single("taskId", f"Task {task.task_id} is not a transcript task.")


def webhook_payload(task: Task, *, transcript: bool, wall: datetime) -> dict[str, object]:
    """The export webhook body: the same document the matching `GetExportData` call returns."""
    return transcript_export(task, wall) if transcript else document_export(task)
