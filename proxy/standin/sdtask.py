"""Handlers for `/api/v1.0/external/sdtask/...`: create, look up, list, restart, export.

A task is named by `taskId` or `externalId` in the query (keys case-insensitive); with both,
`taskId` wins. Export data exists from review (status 50) on; asking earlier is a 409 Conflict
problem, and asking for a transcript export of a document task is a 400.
"""

from __future__ import annotations

from aiohttp import web

from .bodies import Fields, read_json_object
from .exports import check_exportable, check_transcript, document_export, transcript_export
from .keys import CLOCK, LIFECYCLE, ORGANIZATION, WALL_CLOCK
from .listing import page_request, paginate, sorted_or_fail
from .paths import API_PREFIX, id_segment, path_id
from .query import Query
from .tasks import (
    MAX_EXTERNAL_INTEGRATION_STATUS_LENGTH,
    TASK_PROPERTIES,
    Task,
    TaskFilter,
    TaskRequest,
)

_EXTRAS = ("taskAssignment", "customFormValues", "metadata")


def parse_task_request(fields: Fields) -> TaskRequest:
    """A CreateTaskRequest body; `context` and `context.url` are required."""
    context = fields.obj("context", required=True)
    url = context.text("url", required=True) if context else None
    language = context.text("transcriptLanguage") if context else None
    priority = fields.integer("priority")
    if priority is not None and priority < 1:
        fields.fail("priority", "Priority must be 1 (low) or greater (high).")
    request = TaskRequest(
        url=url or "",
        display_name=fields.text("displayName"),
        description=fields.text("description"),
        workspace_id=fields.integer("workspaceId"),
        batch_id=fields.integer("batchId"),
        priority=priority or 1,
        external_id=(fields.text("externalId") or "").strip() or None,
        transcript_language=language,
        extras={name: fields.raw(name) for name in _EXTRAS if fields.raw(name) is not None},
    )
    fields.check()
    return request


def _named_task(request: web.Request) -> Task:
    query = Query(request.query.items())
    task_id, external_id = query.integer("taskId"), query.first("externalId")
    if task_id is None and external_id is None and not query.errors:
        query.fail("taskId", "At least one of taskId or externalId must be specified.")
    query.check()
    return request[ORGANIZATION].task(task_id, external_id)


def _view(request: web.Request, task: Task) -> dict[str, object]:
    return task.view(request.app[LIFECYCLE], request.app[CLOCK]())


async def create_task(request: web.Request) -> web.Response:
    """POST sdtask/process: queue a task and return its status object."""
    task_request = parse_task_request(Fields(await read_json_object(request)))
    app = request.app
    task = request[ORGANIZATION].add_task(
        task_request, app[LIFECYCLE], app[CLOCK](), app[WALL_CLOCK]()
    )
    return web.json_response(_view(request, task))


async def task_status(request: web.Request) -> web.Response:
    """GET sdtask/status?taskId=|externalId=."""
    return web.json_response(_view(request, _named_task(request)))


def _listed(request: web.Request, query: Query) -> list[dict[str, object]]:
    task_filter = TaskFilter.from_query(query)
    tasks = request[ORGANIZATION].tasks.values()
    views = ((task, _view(request, task)) for task in tasks)
    matched = [view for task, view in views if task_filter.matches(task, view)]
    return sorted_or_fail(matched, query, TASK_PROPERTIES)


async def status_list(request: web.Request) -> web.Response:
    """GET sdtask/statuslist: every matching task, as one array."""
    query = Query(request.query.items())
    views = _listed(request, query)
    query.check()
    return web.json_response(views)


async def status_list_paginated(request: web.Request) -> web.Response:
    """GET sdtask/statuslistpaginated: one page of matching tasks."""
    query = Query(request.query.items())
    views, page = _listed(request, query), page_request(query)
    query.check()
    return web.json_response(paginate(views, page))


async def restart_processing(request: web.Request) -> web.Response:
    """PATCH sdtask/restartprocessing: back to queued, `restartCount` + 1, empty answer."""
    app = request.app
    _named_task(request).restart(app[LIFECYCLE], app[CLOCK](), app[WALL_CLOCK]())
    return web.Response()


async def set_external_integration_status(request: web.Request) -> web.Response:
    """PATCH sdtask/externalIntegrationStatus: a non-blank string of at most 32 characters."""
    fields = Fields(await read_json_object(request))
    limit = MAX_EXTERNAL_INTEGRATION_STATUS_LENGTH
    value = fields.text("externalIntegrationStatus", required=True, max_length=limit)
    fields.check()
    assert value is not None
    _named_task(request).external_integration_status = value
    return web.Response()


def _exportable_task(request: web.Request) -> Task:
    task = request[ORGANIZATION].task(path_id(request, "taskId"))
    check_exportable(task, request.app[LIFECYCLE], request.app[CLOCK]())
    return task


async def export_data(request: web.Request) -> web.Response:
    """GET sdtask/GetExportData/{taskId}."""
    return web.json_response(document_export(_exportable_task(request)))


async def transcript_export_data(request: web.Request) -> web.Response:
    """GET sdtask/GetExportData/Transcript/{taskId}."""
    organization = request[ORGANIZATION]
    task = organization.task(path_id(request, "taskId"))
    check_transcript(task, organization.workspace(task.workspace_id).transcript)
    _exportable_task(request)
    return web.json_response(transcript_export(task, request.app[WALL_CLOCK]()))


_BASE = f"{API_PREFIX}/sdtask"
_TASK_ID = id_segment("taskId")
routes = [
    web.post(f"{_BASE}/process", create_task),
    web.get(f"{_BASE}/status", task_status),
    web.get(f"{_BASE}/statuslist", status_list),
    web.get(f"{_BASE}/statuslistpaginated", status_list_paginated),
    web.patch(f"{_BASE}/restartprocessing", restart_processing),
    web.patch(f"{_BASE}/externalIntegrationStatus", set_external_integration_status),
    web.get(f"{_BASE}/GetExportData/{_TASK_ID}", export_data),
    web.get(f"{_BASE}/GetExportData/Transcript/{_TASK_ID}", transcript_export_data),
]
