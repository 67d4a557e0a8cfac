"""sdtask endpoints: create, look up, list, page, restart, external status, exports."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.standin import StandinSettings
from proxy.standin.tasks import TASK_PROPERTIES
from tests.standin_helpers import HUGE_ID, ClientFactory, arabic_indic, problem, start_standin

INT32_ERROR = ["The JSON value could not be converted to System.Int32."]


async def test_creating_a_task_returns_its_queued_status_object(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    task = await standin.create_task()
    assert tuple(task) == TASK_PROPERTIES
    assert task["taskId"] == 1001
    assert task["workspaceId"] == 1
    assert task["taskNumber"] == 1
    assert task["batchId"] is None
    assert task["externalId"] is None
    assert task["displayName"] == "invoice.pdf"
    assert task["createdOn"] == "2024-05-01T12:00:00.1234560Z"
    assert (task["taskStatus"], task["taskStatusText"]) == (30, "QueuedForPreProcessing")
    assert (task["integrationStatus"], task["integrationStatusText"]) == (0, "None")
    assert 1 <= task["totalPages"] <= 9
    assert task["restartCount"] == 0
    assert task["preProcessingStartedOn"] is None
    assert task["externalIntegrationStatus"] == "never"


async def test_a_task_keeps_every_optional_field_it_was_given(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(workspaces=("Second",)))
    batch = await (
        await standin.api("POST", "/sdbatch", json={"displayName": "B", "workspaceId": 2})
    ).json()
    task = await standin.create_task(
        displayName="Named",
        description="Described",
        workspaceId=2,
        batchId=batch["batchId"],
        priority=2,
        externalId="ext-1",
        metadata={"k": "v"},
        taskAssignment={"users": []},
        customFormValues={"a": 1},
    )
    assert task["displayName"] == "Named"
    assert task["description"] == "Described"
    assert (task["workspaceId"], task["batchId"]) == (2, batch["batchId"])
    assert task["externalId"] == "ext-1"


async def test_task_numbers_count_per_workspace_and_ids_are_unique(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(workspaces=("Second",)))
    first, second = await standin.create_task(), await standin.create_task()
    other = await standin.create_task(workspaceId=2)
    assert [first["taskId"], second["taskId"], other["taskId"]] == [1001, 1002, 1003]
    assert [first["taskNumber"], second["taskNumber"], other["taskNumber"]] == [1, 2, 1]


async def test_body_property_names_bind_case_insensitively(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    task = await standin.create_task(Context={"URL": "https://x.example/a.pdf"}, ExternalID="e")
    assert task["externalId"] == "e"


async def test_a_task_without_a_url_file_name_is_named_after_its_id(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    task = await standin.create_task(context={"url": "https://x.example/download?id=5"})
    assert task["displayName"] == "Task 1001"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"Context": ["The Context field is required."]}),
        ({"context": None}, {"Context": ["The Context field is required."]}),
        ({"context": {}}, {"Context.Url": ["The Url field is required."]}),
        ({"context": {"url": "  "}}, {"Context.Url": ["The Url field is required."]}),
        ({"context": "x"}, {"$.context": ["The JSON value could not be converted to an object."]}),
        (
            {"context": {"url": 5}},
            {"$.context.url": ["The JSON value could not be converted to System.String."]},
        ),
        (
            {"context": {"url": "https://x/a"}, "workspaceId": "1"},
            {"$.workspaceId": ["The JSON value could not be converted to System.Int32."]},
        ),
        (
            {"context": {"url": "https://x/a"}, "batchId": True},
            {"$.batchId": ["The JSON value could not be converted to System.Int32."]},
        ),
        (
            {"context": {"url": "https://x/a"}, "priority": 0},
            {"Priority": ["Priority must be 1 (low) or greater (high)."]},
        ),
        ({"context": {"url": "https://x/a"}, "priority": 10**30}, {"$.priority": INT32_ERROR}),
        ({"context": {"url": "https://x/a"}, "workspaceId": 2**31}, {"$.workspaceId": INT32_ERROR}),
        ({"context": {"url": "https://x/a"}, "batchId": -(2**31) - 1}, {"$.batchId": INT32_ERROR}),
    ],
)
async def test_invalid_create_requests_are_validation_problems(
    aiohttp_client: ClientFactory, body: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.api("POST", "/sdtask/process", json=body)
    result = await problem(response, 400)
    assert result["title"] == "One or more validation errors occurred."
    assert result["errors"] == errors


async def test_the_largest_int32_priority_is_accepted(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task(priority=2**31 - 1)


async def test_all_validation_errors_are_reported_at_once(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    body = {"context": {}, "workspaceId": "x", "priority": -1}
    result = await problem(await standin.api("POST", "/sdtask/process", json=body), 400)
    assert set(result["errors"]) == {"Context.Url", "$.workspaceId", "Priority"}


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("{}", "text/plain", 415),
        ("", "application/json", 400),
        ("{not json", "application/json", 400),
        ("[1, 2]", "application/json", 400),
    ],
)
async def test_bodies_that_are_not_json_objects_are_refused(
    aiohttp_client: ClientFactory, data: str, content_type: str, status: int
) -> None:
    standin = await start_standin(aiohttp_client)
    headers = {"Content-Type": content_type}
    await problem(await standin.api("POST", "/sdtask/process", data=data, headers=headers), status)


async def test_a_duplicate_external_id_is_a_conflict(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task(externalId="dup")
    response = await standin.api(
        "POST", "/sdtask/process", json={"context": {"url": "https://x/b"}, "externalId": "dup"}
    )
    result = await problem(response, 409)
    assert "dup" in result["detail"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"workspaceId": 99}, "WorkspaceId"), ({"batchId": 99}, "BatchId")],
)
async def test_unknown_workspace_or_batch_references_are_validation_problems(
    aiohttp_client: ClientFactory, extra: dict[str, int], field: str
) -> None:
    standin = await start_standin(aiohttp_client)
    body = {"context": {"url": "https://x/a"}, **extra}
    result = await problem(await standin.api("POST", "/sdtask/process", json=body), 400)
    assert list(result["errors"]) == [field]


async def test_a_batch_of_another_workspace_is_refused(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(workspaces=("Second",)))
    batch = await (
        await standin.api("POST", "/sdbatch", json={"displayName": "B", "workspaceId": 2})
    ).json()
    body = {"context": {"url": "https://x/a"}, "batchId": batch["batchId"]}
    result = await problem(await standin.api("POST", "/sdtask/process", json=body), 400)
    assert "belongs to workspace 2" in result["errors"]["BatchId"][0]


@pytest.mark.parametrize("query", ["taskId=1001", "taskid=1001", "TASKID=1001&taskId=7"])
async def test_status_by_task_id_with_any_key_case(
    aiohttp_client: ClientFactory, query: str
) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task()
    response = await standin.api("GET", f"/sdtask/status?{query}")
    assert response.status == 200
    assert (await response.json())["taskId"] == 1001


@pytest.mark.parametrize("key", ["externalId", "externalid", "EXTERNALID"])
async def test_status_by_external_id(aiohttp_client: ClientFactory, key: str) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task()
    await standin.create_task(externalId="order-42")
    response = await standin.api("GET", f"/sdtask/status?{key}=order-42")
    assert (await response.json())["taskId"] == 1002


async def test_status_accepts_the_vendors_empty_json_get_body(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task()
    headers = {"Content-Type": "application/json"}
    response = await standin.api("GET", "/sdtask/status?taskId=1001", data="", headers=headers)
    assert response.status == 200


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("taskId=abc", 400),
        ("taskId=", 400),
        ("taskId=2147483648", 400),
        ("taskId=-2147483649", 400),
        ("taskId=5", 404),
        ("taskId=2147483647", 404),
        ("externalId=nope", 404),
    ],
)
async def test_status_errors(aiohttp_client: ClientFactory, query: str, status: int) -> None:
    standin = await start_standin(aiohttp_client)
    await problem(await standin.api("GET", f"/sdtask/status?{query}"), status)


async def test_restart_processing_requeues_and_counts(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task(externalId="r")
    standin.clock.advance(10)
    assert (await standin.status(1001))["taskStatus"] == 60
    response = await standin.api("PATCH", "/sdtask/restartprocessing?externalId=r")
    assert response.status == 200
    assert await response.read() == b""
    task = await standin.status(1001)
    assert (task["taskStatus"], task["restartCount"]) == (30, 1)


async def test_restart_processing_of_an_unknown_task_is_a_404(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    await problem(await standin.api("PATCH", "/sdtask/restartprocessing?taskId=1"), 404)


async def test_external_integration_status_is_stored(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task()
    body = {"externalIntegrationStatus": "x" * 32}
    response = await standin.api(
        "PATCH", "/sdtask/externalIntegrationStatus?taskid=1001", json=body
    )
    assert response.status == 200
    assert await response.read() == b""
    assert (await standin.status(1001))["externalIntegrationStatus"] == "x" * 32


@pytest.mark.parametrize(
    "body",
    [{"externalIntegrationStatus": "   "}, {"externalIntegrationStatus": "x" * 33}, {}],
)
async def test_external_integration_status_must_be_short_and_not_blank(
    aiohttp_client: ClientFactory, body: dict[str, str]
) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task()
    response = await standin.api(
        "PATCH", "/sdtask/externalIntegrationStatus?taskId=1001", json=body
    )
    result = await problem(response, 400)
    assert list(result["errors"]) == ["ExternalIntegrationStatus"]


async def test_export_data_is_a_conflict_before_review(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task()
    result = await problem(await standin.api("GET", "/sdtask/GetExportData/1001"), 409)
    assert "QueuedForPreProcessing" in result["detail"]


async def test_export_data_after_review(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    task = await standin.create_task(externalId="e")
    standin.clock.advance(4)
    response = await standin.api("GET", "/sdtask/GetExportData/1001")
    assert response.status == 200
    export = await response.json()
    assert export["taskId"] == 1001
    assert export["externalId"] == "e"
    assert export["originalFileUrl"] == "https://files.example.com/invoice.pdf"
    assert len(export["chunks"]) == task["totalPages"]
    assert export["chunks"][0]["entities"][0]["pageNumber"] == 1


@pytest.mark.parametrize("path", ["/sdtask/GetExportData/5", "/sdtask/GetExportData/abc"])
async def test_export_data_of_an_unknown_task_is_a_404(
    aiohttp_client: ClientFactory, path: str
) -> None:
    standin = await start_standin(aiohttp_client)
    await problem(await standin.api("GET", path), 404)


@pytest.mark.parametrize(
    "task_id", [HUGE_ID, arabic_indic(1001), "2147483648", "99999999999", "+1001", "1001.0"]
)
@pytest.mark.parametrize("export", ["GetExportData", "GetExportData/Transcript"])
async def test_export_paths_need_an_int32_of_ascii_digits_else_404(
    aiohttp_client: ClientFactory, export: str, task_id: str
) -> None:
    # Task 1001 can be exported both ways, so an id wrongly read as 1001 would answer 200.
    settings = StandinSettings(workspaces=("Meeting Transcripts",))
    standin = await start_standin(aiohttp_client, settings)
    await standin.create_task(workspaceId=2, context={"url": "https://x.example/call.mp3"})
    standin.clock.advance(10)
    assert (await standin.api("GET", f"/sdtask/{export}/1001")).status == 200
    await problem(await standin.api("GET", f"/sdtask/{export}/{task_id}"), 404)


async def test_transcript_export_needs_a_transcript_task(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    await standin.create_task()
    standin.clock.advance(10)
    await problem(await standin.api("GET", "/sdtask/GetExportData/Transcript/1001"), 400)


async def test_transcript_export_of_a_transcript_task(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(
        aiohttp_client, StandinSettings(workspaces=("Meeting Transcripts",))
    )
    body = {"url": "https://x.example/call.mp3", "transcriptLanguage": "pt-PT"}
    task = await standin.create_task(workspaceId=2, context=body)
    await problem(await standin.api("GET", "/sdtask/GetExportData/Transcript/1001"), 409)
    standin.clock.advance(10)
    export = await (await standin.api("GET", "/sdtask/GetExportData/Transcript/1001")).json()
    assert export["language"] == "pt-PT"
    assert len(export["segments"]) == task["totalPages"]
    assert [s["speakerName"] for s in export["speakers"]] == ["Interviewer", "Guest"]
    assert export["segments"][0]["speakerId"] == export["speakers"][0]["speakerId"]
    assert export["exportedFileUrl"].startswith(
        "https://exports.standin.invalid/transcripts/1001.docx?"
    )
