"""Handlers for `/api/v1.0/external/transcripts/speakers/...`: workspace and task speakers.

Every answer that returns speakers uses the request bodies' own shape, `{"speakers": [...]}`.
POST adds task speakers (an id already present is a 409), PUT on a task updates existing ones
(an unknown id is a 404), PUT on a workspace replaces the whole list.
"""

from __future__ import annotations

from aiohttp import web

from .bodies import Fields, read_json_object
from .errors import Conflict, NotFound
from .keys import ORGANIZATION
from .paths import API_PREFIX, id_segment, path_id
from .speakers import Speaker, canonical_guid, parse_speakers
from .tasks import Task


def _listing(speakers: list[Speaker], *, with_default: bool) -> web.Response:
    views = [speaker.view(with_default=with_default) for speaker in speakers]
    return web.json_response({"speakers": views})


def _task(request: web.Request) -> Task:
    task_id, workspace_id = path_id(request, "taskId"), path_id(request, "workspaceId")
    return request[ORGANIZATION].task_in_workspace(task_id, workspace_id)


async def workspace_speakers(request: web.Request) -> web.Response:
    """GET speakers/workspaces/{workspaceId}."""
    workspace = request[ORGANIZATION].workspace(path_id(request, "workspaceId"))
    return _listing(workspace.speakers, with_default=False)


async def replace_workspace_speakers(request: web.Request) -> web.Response:
    """PUT speakers/workspaces/{workspaceId}: the body's list replaces the workspace's."""
    workspace = request[ORGANIZATION].workspace(path_id(request, "workspaceId"))
    speakers = parse_speakers(Fields(await read_json_object(request)), allow_single=False)
    workspace.speakers = speakers
    return _listing(workspace.speakers, with_default=False)


async def task_speakers(request: web.Request) -> web.Response:
    """GET speakers/tasks/{taskId}/{workspaceId}."""
    return _listing(_task(request).speakers, with_default=True)


async def add_task_speakers(request: web.Request) -> web.Response:
    """POST speakers/tasks/{taskId}/{workspaceId}: add new speakers to the task."""
    task = _task(request)
    added = parse_speakers(Fields(await read_json_object(request)), allow_single=True)
    known = {speaker.speaker_id for speaker in task.speakers}
    clash = next((speaker for speaker in added if speaker.speaker_id in known), None)
    if clash is not None:
        raise Conflict(f"Speaker {clash.speaker_id} already exists on task {task.task_id}.")
    task.speakers.extend(added)
    return _listing(task.speakers, with_default=True)


async def update_task_speakers(request: web.Request) -> web.Response:
    """PUT speakers/tasks/{taskId}/{workspaceId}: update existing speakers of the task."""
    task = _task(request)
    updates = {
        s.speaker_id: s
        for s in parse_speakers(Fields(await read_json_object(request)), allow_single=True)
    }
    missing = updates.keys() - {speaker.speaker_id for speaker in task.speakers}
    if missing:
        raise NotFound(f"Speaker {min(missing)} does not exist on task {task.task_id}.")
    task.speakers = [updates.get(speaker.speaker_id, speaker) for speaker in task.speakers]
    return _listing(task.speakers, with_default=True)


async def delete_task_speaker(request: web.Request) -> web.Response:
    """DELETE speakers/tasks/{taskId}/{workspaceId}/{speakerId}: empty answer."""
    task = _task(request)
    speaker_id = canonical_guid(request.match_info["speakerId"])
    remaining = [speaker for speaker in task.speakers if speaker.speaker_id != speaker_id]
    if speaker_id is None or len(remaining) == len(task.speakers):
        raise NotFound(f"Speaker {request.match_info['speakerId']} does not exist on this task.")
    task.speakers = remaining
    return web.Response()


_SPEAKERS = f"{API_PREFIX}/transcripts/speakers"
_WORKSPACE = f"{_SPEAKERS}/workspaces/{id_segment('workspaceId')}"
_TASK = f"{_SPEAKERS}/tasks/{id_segment('taskId')}/{id_segment('workspaceId')}"
routes = [
    web.get(_WORKSPACE, workspace_speakers),
    web.put(_WORKSPACE, replace_workspace_speakers),
    web.get(_TASK, task_speakers),
    web.post(_TASK, add_task_speakers),
    web.put(_TASK, update_task_speakers),
    web.delete(_TASK + "/{speakerId}", delete_task_speaker),
]
