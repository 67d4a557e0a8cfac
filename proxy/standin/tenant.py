"""Handlers for `/api/v1.0/external/tenant/...`: roles and organization users."""

from __future__ import annotations

from aiohttp import web

from .bodies import Fields, read_json_object
from .keys import ORGANIZATION, WALL_CLOCK
from .paths import API_PREFIX
from .users import AVAILABLE_ROLES, parse_invitations


async def available_roles(request: web.Request) -> web.Response:
    """GET tenant/availableroles: the documented five roles."""
    return web.json_response([{"name": role} for role in AVAILABLE_ROLES])


async def tenant_users(request: web.Request) -> web.Response:
    """GET tenant/allusers."""
    return web.json_response([user.view() for user in request[ORGANIZATION].users])


async def invite_tenant_users(request: web.Request) -> web.Response:
    """POST tenant/inviteusers: `{"users": [{email, roleName}]}`, empty answer."""
    invitations = parse_invitations(Fields(await read_json_object(request)))
    request[ORGANIZATION].invite(invitations, None, request.app[WALL_CLOCK]())
    return web.Response()


routes = [
    web.get(f"{API_PREFIX}/tenant/availableroles", available_roles),
    web.get(f"{API_PREFIX}/tenant/allusers", tenant_users),
    web.post(f"{API_PREFIX}/tenant/inviteusers", invite_tenant_users),
]
