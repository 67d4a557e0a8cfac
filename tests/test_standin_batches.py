"""sdbatch: create, get and page through batches."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

from proxy.standin import StandinSettings
from tests.standin_helpers import ClientFactory, Standin, ok_json, problem, start_standin

TICKS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")


async def test_a_batch_is_created_and_read_back(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    body = {"displayName": "May invoices", "description": "d"}
    batch = await ok_json(await standin.api("POST", "/sdbatch", json=body))
    assert batch == {
        "batchId": 101,
        "workspaceId": 1,
        "displayName": "May invoices",
        "description": "d",
        "createdOn": "2024-05-01T12:00:00.1234560Z",
        "totalTasks": 0,
        "totalTasksInHistory": 0,
    }
    assert TICKS.match(batch["createdOn"])
    await standin.create_task(batchId=101)
    again = await ok_json(await standin.api("GET", "/sdbatch?BATCHID=101"))
    assert (again["totalTasks"], again["totalTasksInHistory"]) == (1, 1)


async def test_tasks_and_batches_write_created_on_with_the_same_seven_digits(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    batch = await ok_json(await standin.api("POST", "/sdbatch", json={"displayName": "B"}))
    task = await standin.create_task(batchId=batch["batchId"])
    assert TICKS.match(task["createdOn"])
    assert task["createdOn"] == batch["createdOn"]  # created at the same (injected) moment


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "DisplayName"),
        ({"displayName": " "}, "DisplayName"),
        ({"displayName": "x", "workspaceId": 7}, "WorkspaceId"),
        ({"displayName": 3}, "$.displayName"),
    ],
)
async def test_invalid_batches_are_validation_problems(
    aiohttp_client: ClientFactory, body: dict[str, Any], field: str
) -> None:
    standin = await start_standin(aiohttp_client)
    result = await problem(await standin.api("POST", "/sdbatch", json=body), 400)
    assert list(result["errors"]) == [field]


@pytest.mark.parametrize(("query", "status"), [("", 400), ("batchId=x", 400), ("batchId=1", 404)])
async def test_get_batch_errors(aiohttp_client: ClientFactory, query: str, status: int) -> None:
    standin = await start_standin(aiohttp_client)
    await problem(await standin.api("GET", f"/sdbatch?{query}"), status)


async def make_batches(standin: Standin) -> None:
    for number, workspace in enumerate((1, 2, 1), start=1):
        body = {"displayName": f"b{number}", "workspaceId": workspace}
        await ok_json(await standin.api("POST", "/sdbatch", json=body))
        standin.clock.advance(60)


async def test_batches_page_with_filters_and_sorting(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(workspaces=("Second",)))
    await make_batches(standin)
    page = await ok_json(await standin.api("GET", "/sdbatch/paginated"))
    assert [b["batchId"] for b in page["items"]] == [101, 102, 103]
    assert (page["totalCount"], page["totalPages"], page["hasNextPage"]) == (3, 1, False)
    query = "workspaceId=1&WORKSPACEID=3&sort=-createdOn&pageSize=1"
    page = await ok_json(await standin.api("GET", f"/sdbatch/paginated?{query}"))
    assert [b["batchId"] for b in page["items"]] == [103]
    assert (page["totalCount"], page["totalPages"], page["hasNextPage"]) == (2, 2, True)
    query = "startDate=2024-05-01T12:00:30Z&endDate=2024-05-01T12:01:30Z"
    page = await ok_json(await standin.api("GET", f"/sdbatch/paginated?{query}"))
    assert [b["batchId"] for b in page["items"]] == [102]


async def test_batch_paging_refuses_an_unknown_sort(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    result = await problem(await standin.api("GET", "/sdbatch/paginated?sort=size"), 400)
    assert "sort" in result["errors"]


async def test_a_batch_is_found_by_its_own_created_on_as_start_and_end_date(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(workspaces=("Second",)))
    await make_batches(standin)
    middle = await ok_json(await standin.api("GET", "/sdbatch?batchId=102"))
    created_on = quote(middle["createdOn"])  # 2024-05-01T12:01:00.1234560Z, to the tick

    async def listed(query: str) -> list[int]:
        page = await ok_json(await standin.api("GET", f"/sdbatch/paginated?{query}"))
        return [batch["batchId"] for batch in page["items"]]

    assert await listed(f"startDate={created_on}") == [102, 103]
    assert await listed(f"endDate={created_on}") == [101, 102]


@pytest.mark.parametrize(
    "query",
    ["startDate=9999-12-31T23:59:59-05:00", "endDate=0001-01-01T00:00:00%2B05:00"],
)
async def test_dates_whose_utc_time_leaves_the_calendar_are_validation_problems(
    aiohttp_client: ClientFactory, query: str
) -> None:
    standin = await start_standin(aiohttp_client)
    result = await problem(await standin.api("GET", f"/sdbatch/paginated?{query}"), 400)
    assert list(result["errors"]) == [query.split("=", 1)[0]]


async def test_json_nested_past_the_recursion_limit_is_not_valid_json(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    deep = "[" * 200_000 + "]" * 200_000
    headers = {"Content-Type": "application/json"}
    result = await problem(await standin.api("POST", "/sdbatch", data=deep, headers=headers), 400)
    assert result["errors"] == {"$": ["The request body is not valid JSON."]}
