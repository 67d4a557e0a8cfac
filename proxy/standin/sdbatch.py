"""Handlers for `/api/v1.0/external/sdbatch`: create, get and page through batches."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from .batches import BATCH_PROPERTIES, Batch
from .bodies import Fields, read_json_object
from .keys import ORGANIZATION, WALL_CLOCK
from .listing import page_request, paginate, sorted_or_fail
from .paths import API_PREFIX
from .query import Query


async def create_batch(request: web.Request) -> web.Response:
    """POST sdbatch: `displayName` required; `workspaceId` defaults to the default workspace."""
    fields = Fields(await read_json_object(request))
    display_name = fields.text("displayName", required=True)
    description, workspace_id = fields.text("description"), fields.integer("workspaceId")
    fields.check()
    assert display_name is not None
    organization = request[ORGANIZATION]
    batch = organization.add_batch(
        display_name, description, workspace_id, request.app[WALL_CLOCK]()
    )
    return web.json_response(organization.batch_view(batch))


async def get_batch(request: web.Request) -> web.Response:
    """GET sdbatch?batchId=."""
    query = Query(request.query.items())
    batch_id = query.integer("batchId")
    if batch_id is None and not query.errors:
        query.fail("batchId", "The batchId field is required.")
    query.check()
    assert batch_id is not None
    organization = request[ORGANIZATION]
    return web.json_response(organization.batch_view(organization.batch(batch_id)))


def _in_range(batch: Batch, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or batch.created_on >= start) and (end is None or batch.created_on <= end)


async def batches_paginated(request: web.Request) -> web.Response:
    """GET sdbatch/paginated: optional dates, repeatable `workspaceId`, sort and paging."""
    query = Query(request.query.items())
    start, end = query.date("startDate"), query.date("endDate")
    workspaces = set(query.integers("workspaceId"))
    organization = request[ORGANIZATION]
    views = [
        organization.batch_view(batch)
        for batch in organization.batches.values()
        if _in_range(batch, start, end) and (not workspaces or batch.workspace_id in workspaces)
    ]
    views, page = sorted_or_fail(views, query, BATCH_PROPERTIES), page_request(query)
    query.check()
    return web.json_response(paginate(views, page))


routes = [
    web.post(f"{API_PREFIX}/sdbatch", create_batch),
    web.get(f"{API_PREFIX}/sdbatch", get_batch),
    web.get(f"{API_PREFIX}/sdbatch/paginated", batches_paginated),
]
