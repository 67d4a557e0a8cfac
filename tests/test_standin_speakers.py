"""Transcript speakers of workspaces and tasks."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.standin import StandinSettings
from tests.standin_helpers import (
    HUGE_ID,
    ClientFactory,
    Standin,
    arabic_indic,
    ok_json,
    problem,
    start_standin,
)

GUID_A = "90edf137-ea2a-4b59-bf51-45446299d47e"
GUID_B = "1c2ee2da-e2f6-433d-b554-248707c2491c"


async def test_workspace_speakers_are_replaced_by_put(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    assert await ok_json(await standin.api("GET", "/transcripts/speakers/workspaces/1")) == {
        "speakers": []
    }
    body = {
        "speakers": [{"speakerId": GUID_A.upper(), "speakerName": "Ana", "speakerPrefix": "Dr."}]
    }
    put = await ok_json(await standin.api("PUT", "/transcripts/speakers/workspaces/1", json=body))
    expected = {
        "speakers": [
            {
                "speakerId": GUID_A,
                "speakerName": "Ana",
                "speakerPrefix": "Dr.",
                "speakerSuffix": None,
            }
        ]
    }
    assert put == expected
    assert await ok_json(await standin.api("GET", "/transcripts/speakers/workspaces/1")) == expected


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"speakers": [{"speakerId": "nope", "speakerName": "A"}]}, "Speakers[0].SpeakerId"),
        ({"speakers": [{"speakerId": GUID_A}]}, "Speakers[0].SpeakerName"),
        ({"speakers": "x"}, "$.speakers"),
        ({}, "Speakers"),
        ({"speakers": [7]}, "Speakers[0]"),
        (
            {"speakers": [{"speakerId": GUID_A, "speakerName": "A"}] * 2},
            "Speakers",
        ),
    ],
)
async def test_invalid_workspace_speakers_are_validation_problems(
    aiohttp_client: ClientFactory, body: dict[str, Any], field: str
) -> None:
    standin = await start_standin(aiohttp_client)
    response = await standin.api("PUT", "/transcripts/speakers/workspaces/1", json=body)
    result = await problem(response, 400)
    assert list(result["errors"]) == [field]


async def test_speakers_of_an_unknown_workspace_are_a_404(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client)
    await problem(await standin.api("GET", "/transcripts/speakers/workspaces/5"), 404)


async def test_task_speakers_start_as_the_workspace_speakers(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(workspaces=("Transcripts",)))
    await standin.create_task(workspaceId=2)
    speakers = await ok_json(await standin.api("GET", "/transcripts/speakers/tasks/1001/2"))
    assert [s["speakerName"] for s in speakers["speakers"]] == ["Interviewer", "Guest"]
    assert all(s["isDefault"] is False for s in speakers["speakers"])


TASK_SPEAKERS = "/transcripts/speakers/tasks/1001/1"


async def standin_with_two_task_speakers(aiohttp_client: ClientFactory) -> Standin:
    standin = await start_standin(aiohttp_client)
    await standin.create_task()
    single = {"speakerId": GUID_A, "speakerName": "Ana", "isDefault": True}
    await ok_json(await standin.api("POST", TASK_SPEAKERS, json=single))
    wrapped = {"speakers": [{"speakerId": GUID_B, "speakerName": "Bo", "isDefault": False}]}
    await ok_json(await standin.api("POST", TASK_SPEAKERS, json=wrapped))
    return standin


async def test_task_speakers_are_added_bare_or_wrapped(aiohttp_client: ClientFactory) -> None:
    standin = await standin_with_two_task_speakers(aiohttp_client)
    listed = await ok_json(await standin.api("GET", TASK_SPEAKERS))
    assert listed["speakers"] == [
        {
            "speakerId": GUID_A,
            "speakerName": "Ana",
            "speakerPrefix": None,
            "speakerSuffix": None,
            "isDefault": True,
        },
        {
            "speakerId": GUID_B,
            "speakerName": "Bo",
            "speakerPrefix": None,
            "speakerSuffix": None,
            "isDefault": False,
        },
    ]


async def test_task_speakers_are_updated_in_place(aiohttp_client: ClientFactory) -> None:
    standin = await standin_with_two_task_speakers(aiohttp_client)
    speaker = {"speakerId": GUID_A, "speakerName": "Ana Maria", "speakerSuffix": "PhD"}
    updated = await ok_json(await standin.api("PUT", TASK_SPEAKERS, json={"speakers": [speaker]}))
    assert [(s["speakerName"], s["speakerSuffix"]) for s in updated["speakers"]] == [
        ("Ana Maria", "PhD"),
        ("Bo", None),
    ]


async def test_a_task_speaker_is_deleted(aiohttp_client: ClientFactory) -> None:
    standin = await standin_with_two_task_speakers(aiohttp_client)
    deleted = await standin.api("DELETE", f"{TASK_SPEAKERS}/{GUID_B.upper()}")
    assert deleted.status == 200
    assert await deleted.read() == b""
    left = await ok_json(await standin.api("GET", TASK_SPEAKERS))
    assert [s["speakerId"] for s in left["speakers"]] == [GUID_A]


async def test_task_speaker_errors(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(workspaces=("Second",)))
    await standin.create_task()
    path = "/transcripts/speakers/tasks/1001/1"
    speaker = {"speakerId": GUID_A, "speakerName": "Ana"}
    await ok_json(await standin.api("POST", path, json=speaker))
    await problem(await standin.api("POST", path, json=speaker), 409)
    await problem(await standin.api("PUT", path, json={**speaker, "speakerId": GUID_B}), 404)
    await problem(await standin.api("DELETE", f"{path}/{GUID_B}"), 404)
    await problem(await standin.api("DELETE", f"{path}/not-a-guid"), 404)
    await problem(await standin.api("GET", "/transcripts/speakers/tasks/1001/2"), 404)
    await problem(await standin.api("GET", "/transcripts/speakers/tasks/1001/9"), 404)
    await problem(await standin.api("GET", "/transcripts/speakers/tasks/1999/1"), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/transcripts/speakers/workspaces/{HUGE_ID}"),
        ("PUT", f"/transcripts/speakers/workspaces/{HUGE_ID}"),
        ("GET", f"/transcripts/speakers/workspaces/{arabic_indic(2)}"),
        ("GET", "/transcripts/speakers/workspaces/2147483648"),
        ("GET", f"/transcripts/speakers/tasks/{HUGE_ID}/2"),
        ("GET", f"/transcripts/speakers/tasks/1001/{HUGE_ID}"),
        ("GET", f"/transcripts/speakers/tasks/{arabic_indic(1001)}/2"),
        ("GET", f"/transcripts/speakers/tasks/1001/{arabic_indic(2)}"),
        ("DELETE", f"/transcripts/speakers/tasks/{HUGE_ID}/2/{GUID_A}"),
    ],
)
async def test_speaker_paths_need_int32_ids_of_ascii_digits_else_404(
    aiohttp_client: ClientFactory, method: str, path: str
) -> None:
    # Workspace 2 is a transcript workspace with demo speakers and task 1001 in it, so an id
    # wrongly read as 2 or 1001 would answer 200.
    standin = await start_standin(aiohttp_client, StandinSettings(workspaces=("Transcripts",)))
    await standin.create_task(workspaceId=2, context={"url": "https://x.example/call.mp3"})
    assert (await standin.api("GET", "/transcripts/speakers/tasks/1001/2")).status == 200
    body = {"speakers": [{"speakerId": GUID_A, "speakerName": "Ana"}]}
    await problem(await standin.api(method, path, json=body), 404)
