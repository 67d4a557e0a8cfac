"""sdtask statuslist and statuslistpaginated: filters, repeated keys, sorting, paging."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from proxy.standin import StandinSettings
from tests.standin_helpers import START_WALL, ClientFactory, Standin, problem, start_standin

DATES = "startDate=2000-01-01T00:00:00Z"


async def listed(standin: Standin, query: str) -> list[dict[str, Any]]:
    response = await standin.api("GET", f"/sdtask/statuslist?{query}")
    assert response.status == 200, await response.text()
    result: list[dict[str, Any]] = await response.json()
    return result


async def test_status_list_needs_a_start_or_end_date(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    result = await problem(await standin.api("GET", "/sdtask/statuslist"), 400)
    assert "startDate" in result["errors"]


async def test_status_list_filters_by_creation_dates(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task()  # 12:00:00
    standin.clock.advance(1800)
    await standin.create_task()  # 12:30:00
    assert [t["taskId"] for t in await listed(standin, "startDate=2024-05-01T12:15:00Z")] == [1002]
    assert [t["taskId"] for t in await listed(standin, "endDate=2024-05-01T12:15:00")] == [1001]
    both = "startdate=2024-05-01T11:00:00%2B00:00&ENDDATE=2024-05-01T14:00:00Z"
    assert len(await listed(standin, both)) == 2


async def test_a_task_created_exactly_at_the_start_or_end_date_is_listed(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task()  # created at START_WALL, microseconds and all
    standin.clock.advance(60)
    await standin.create_task()
    exact = quote(START_WALL.isoformat())
    assert [t["taskId"] for t in await listed(standin, f"startDate={exact}")] == [1001, 1002]
    assert [t["taskId"] for t in await listed(standin, f"endDate={exact}")] == [1001]


@pytest.mark.parametrize("path", ["statuslist", "statuslistpaginated"])
@pytest.mark.parametrize(
    "query",
    ["startDate=9999-12-31T23:59:59-05:00", "endDate=0001-01-01T00:00:00%2B05:00"],
)
async def test_dates_whose_utc_time_leaves_the_calendar_are_validation_problems(
    aiohttp_client: ClientFactory, path: str, query: str
) -> None:
    standin = await start_standin(aiohttp_client)
    result = await problem(await standin.api("GET", f"/sdtask/{path}?{query}"), 400)
    assert list(result["errors"]) == [query.split("=", 1)[0]]


async def test_status_list_filters_with_repeated_keys(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(workspaces=("B", "C")))
    for workspace in (1, 2, 3):
        await standin.create_task(workspaceId=workspace)
    found = await listed(standin, f"{DATES}&workspaceId=1&workspaceid=3")
    assert [t["workspaceId"] for t in found] == [1, 3]
    assert len(await listed(standin, f"{DATES}&taskStatus=30&taskStatus=31")) == 3
    assert await listed(standin, f"{DATES}&taskStatus=31&taskStatus=34") == []
    assert len(await listed(standin, f"{DATES}&integrationStatus=0")) == 3
    assert await listed(standin, f"{DATES}&integrationStatus=2") == []


async def test_status_list_filters_by_external_integration_status(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task()
    await standin.create_task()
    body = {"externalIntegrationStatus": "Synced"}
    await standin.api("PATCH", "/sdtask/externalIntegrationStatus?taskId=1002", json=body)
    found = await listed(standin, f"{DATES}&externalIntegrationStatus=synced")
    assert [t["taskId"] for t in found] == [1002]
    never = await listed(
        standin, f"{DATES}&externalIntegrationStatus=never&externalIntegrationStatus=Synced"
    )
    assert len(never) == 2


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("", [1001, 1002, 1003]),
        ("&sort=createdOn", [1001, 1002, 1003]),
        ("&sort=-taskId", [1003, 1002, 1001]),
        ("&sort=TASKID%20desc", [1003, 1002, 1001]),
        ("&sort=displayName", [1002, 1003, 1001]),
        ("&sort=externalId", [1003, 1001, 1002]),
    ],
)
async def test_status_list_sorting(
    aiohttp_client: ClientFactory, sort: str, expected: list[int]
) -> None:
    standin = await start_standin(aiohttp_client)
    for name, external in (("c", "y"), ("a", None), ("b", "x")):
        await standin.create_task(displayName=name, externalId=external)
        standin.clock.advance(1)
    assert [t["taskId"] for t in await listed(standin, DATES + sort)] == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (f"{DATES}&sort=colour", "sort"),
        ("startDate=yesterday", "startDate"),
        (f"{DATES}&taskStatus=queued", "taskStatus"),
        (f"{DATES}&workspaceId=1.5", "workspaceId"),
        (f"{DATES}&workspaceId=1&workspaceId=2147483648", "workspaceId"),
        (f"{DATES}&taskStatus=-2147483649", "taskStatus"),
    ],
)
async def test_status_list_query_errors_are_validation_problems(
    aiohttp_client: ClientFactory, query: str, field: str
) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task()
    result = await problem(await standin.api("GET", f"/sdtask/statuslist?{query}"), 400)
    assert field in result["errors"]


async def test_paginated_status_list_pages_ten_by_default(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    for _ in range(12):
        await standin.create_task()
    first = await (await standin.api("GET", f"/sdtask/statuslistpaginated?{DATES}")).json()
    assert len(first["items"]) == 10
    assert {k: v for k, v in first.items() if k != "items"} == {
        "pageNumber": 1,
        "totalPages": 2,
        "totalCount": 12,
        "hasPreviousPage": False,
        "hasNextPage": True,
    }
    second = await (
        await standin.api("GET", f"/sdtask/statuslistpaginated?{DATES}&PageNumber=2")
    ).json()
    assert [t["taskId"] for t in second["items"]] == [1011, 1012]
    assert (second["hasPreviousPage"], second["hasNextPage"]) == (True, False)


async def test_paginated_status_list_page_size_and_past_the_end(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    for _ in range(3):
        await standin.create_task()
    query = f"{DATES}&pageSize=2&pageNumber=5"
    page = await (await standin.api("GET", f"/sdtask/statuslistpaginated?{query}")).json()
    assert page["items"] == []
    assert (page["totalPages"], page["totalCount"], page["pageNumber"]) == (2, 3, 5)


@pytest.mark.parametrize(
    "paging", ["pageNumber=0", "pageSize=0", "pageSize=ten", "pageNumber=9999999999"]
)
async def test_paginated_status_list_refuses_bad_paging(
    aiohttp_client: ClientFactory, paging: str
) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.api("GET", f"/sdtask/statuslistpaginated?{DATES}&{paging}")
    await problem(response, 400)
