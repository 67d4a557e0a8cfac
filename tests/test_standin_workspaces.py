"""Workspaces, tenant roles, and tenant and workspace users."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.standin import StandinSettings
from tests.standin_helpers import (
    HUGE_ID,
    ClientFactory,
    arabic_indic,
    ok_json,
    problem,
    start_standin,
)


async def test_workspaces_list_the_default_then_the_configured_ones(
    aiohttp_client: ClientFactory,
) -> None:
    settings = StandinSettings(default_workspace_name="Main", workspaces=("Call transcripts",))
    standin = await start_standin(aiohttp_client, settings)
    workspaces = await ok_json(await standin.api("GET", "/sdworkspace/CurrentWorkspaces"))
    assert [tuple(w) for w in workspaces] == [
        (
            "workspaceId",
            "tenantId",
            "workspaceName",
            "workspaceDescription",
            "isDefault",
            "taskType",
            "workspaceType",
            "templateType",
            "workspaceTemplateName",
        )
    ] * 2
    assert [(w["workspaceId"], w["workspaceName"], w["isDefault"]) for w in workspaces] == [
        (1, "Main", True),
        (2, "Call transcripts", False),
    ]
    assert workspaces[0]["taskType"] != workspaces[1]["taskType"]
    assert workspaces[1]["workspaceTemplateName"] == "Transcript"


async def test_available_roles_are_the_documented_list(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    roles = await ok_json(await standin.api("GET", "/tenant/availableroles"))
    assert roles == [
        {"name": "Administrator"},
        {"name": "Manager"},
        {"name": "Creator"},
        {"name": "Reviewer"},
        {"name": "Viewer"},
    ]


async def test_the_tenant_starts_with_one_active_administrator(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    users = await ok_json(await standin.api("GET", "/tenant/allusers"))
    assert users == [
        {
            "id": 1,
            "roleName": "Administrator",
            "name": "Demo Admin",
            "userName": "admin@example.com",
            "email": "admin@example.com",
            "createdAt": "2024-05-01T12:00:00Z",
            "emailConfirmed": True,
            "status": "Active",
        }
    ]


async def test_invited_tenant_users_are_listed_as_inactive(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    body = {"users": [{"email": "ana@example.com", "roleName": "reviewer"}]}
    response = await standin.api("POST", "/tenant/inviteusers", json=body)
    assert response.status == 200
    assert await response.read() == b""
    users = await ok_json(await standin.api("GET", "/tenant/allusers"))
    invited = users[-1]
    assert (invited["id"], invited["email"], invited["roleName"]) == (
        2,
        "ana@example.com",
        "Reviewer",
    )
    assert (invited["status"], invited["emailConfirmed"]) == ("Inactive", False)
    await standin.api("POST", "/tenant/inviteusers", json=body)
    assert len(await ok_json(await standin.api("GET", "/tenant/allusers"))) == 2


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["Users"]),
        ({"users": []}, ["Users"]),
        ({"users": [{"email": "not-an-email", "roleName": "Viewer"}]}, ["Users[0].Email"]),
        ({"users": [{"email": "a@example.com", "roleName": "Boss"}]}, ["Users[0].RoleName"]),
        ({"users": [{"roleName": "Viewer"}]}, ["Users[0].Email"]),
        ({"users": ["a@example.com"]}, ["Users[0]"]),
    ],
)
async def test_invalid_tenant_invitations_are_validation_problems(
    aiohttp_client: ClientFactory, body: dict[str, Any], fields: list[str]
) -> None:
    standin = await start_standin(aiohttp_client)
    result = await problem(await standin.api("POST", "/tenant/inviteusers", json=body), 400)
    assert list(result["errors"]) == fields


async def test_workspace_invitations_grant_workspace_access(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(workspaces=("Second",)))
    body = {"workspaceId": 2, "users": [{"email": "bo@example.com", "roleName": "Viewer"}]}
    response = await standin.api("POST", "/sdworkspace/inviteusers", json=body)
    assert response.status == 200
    assert await response.read() == b""
    second = await ok_json(await standin.api("GET", "/sdworkspace/allusers/2"))
    assert [u["email"] for u in second] == ["admin@example.com", "bo@example.com"]
    first = await ok_json(await standin.api("GET", "/sdworkspace/allusers/1"))
    assert [u["email"] for u in first] == ["admin@example.com"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"users": [{"email": "a@example.com", "roleName": "Viewer"}]}, "WorkspaceId"),
        (
            {"workspaceId": 9, "users": [{"email": "a@example.com", "roleName": "Viewer"}]},
            "WorkspaceId",
        ),
    ],
)
async def test_workspace_invitations_need_an_existing_workspace(
    aiohttp_client: ClientFactory, body: dict[str, Any], field: str
) -> None:
    standin = await start_standin(aiohttp_client)
    result = await problem(await standin.api("POST", "/sdworkspace/inviteusers", json=body), 400)
    assert list(result["errors"]) == [field]


async def test_users_of_an_unknown_workspace_is_a_404(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    await problem(await standin.api("GET", "/sdworkspace/allusers/9"), 404)


@pytest.mark.parametrize("workspace_id", [HUGE_ID, arabic_indic(1), "2147483648"])
async def test_workspace_user_paths_need_an_int32_of_ascii_digits_else_404(
    aiohttp_client: ClientFactory, workspace_id: str
) -> None:
    standin = await start_standin(aiohttp_client)
    await problem(await standin.api("GET", f"/sdworkspace/allusers/{workspace_id}"), 404)
