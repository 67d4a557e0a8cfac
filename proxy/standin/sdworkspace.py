"""Handlers for `/api/v1.0/external/sdworkspace/...`: workspaces and their users."""

from __future__ import annotations

from aiohttp import web

from .bodies import Fields, read_json_object
from .keys import ORGANIZATION, WALL_CLOCK
from .paths import API_PREFIX, id_segment, path_id
from .users import parse_invitations


async def current_workspaces(request: web.Request) -> web.Response:
    """GET sdworkspace/CurrentWorkspaces: the default workspace first, then the configured ones."""
    workspaces = request[ORGANIZATION].workspaces.values()
    return web.json_response([workspace.view() for workspace in workspaces])


async def workspace_users(request: web.Request) -> web.Response:
    """GET sdworkspace/allusers/{workspaceId}."""
    users = request[ORGANIZATION].users_of(path_id(request, "workspaceId"))
    return web.json_response([user.view() for user in users])


async def invite_workspace_users(request: web.Request) -> web.Response:
    """POST sdworkspace/inviteusers: `{"workspaceId", "users": [...]}`, empty answer."""
    fields = Fields(await read_json_object(request))
    workspace_id = fields.integer("workspaceId", required=True)
    invitations = parse_invitations(fields)
    organization = request[ORGANIZATION]
    workspace = organization.referenced_workspace(workspace_id)
    organization.invite(invitations, workspace.workspace_id, request.app[WALL_CLOCK]())
    return web.Response()


routes = [
    web.get(f"{API_PREFIX}/sdworkspace/CurrentWorkspaces", current_workspaces),
    web.get(f"{API_PREFIX}/sdworkspace/allusers/{id_segment('workspaceId')}", workspace_users),
    web.post(f"{API_PREFIX}/sdworkspace/inviteusers", invite_workspace_users),
]
