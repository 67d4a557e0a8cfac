"""The export webhook: sent when review is done; 2xx archives, anything else back to review."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from proxy.standin import StandinSettings
from proxy.standin.lifecycle import Lifecycle
from proxy.standin.settings import OrganizationSettings
from proxy.standin.tasks import Task, TaskRequest
from proxy.standin.webhooks import delivery_due, redact, tick_seconds
from tests.fakes import free_port
from tests.standin_helpers import (
    START_WALL,
    ClientFactory,
    Standin,
    start_standin,
    token_form,
    wait_for,
)

# A tiny step keeps the ticker fast (it runs every max(step, 50 ms) of real time) while the
# fake clock decides when a task is due.
STEP = 0.01
REVIEW_DONE = 5 * STEP


@dataclass
class Receiver:
    """A fake customer endpoint: records each POST and answers the next scripted status.

    A 3xx status comes with `Location: /moved`, which answers 200 to anything it receives.
    """

    statuses: list[int] = field(default_factory=lambda: [200])
    received: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    hold: asyncio.Event | None = None
    moved_hits: int = 0

    def app(self) -> web.Application:
        async def hook(request: web.Request) -> web.Response:
            self.content_types.append(request.content_type)
            self.received.append(await request.json())
            if self.hold is not None:
                await self.hold.wait()
            status = self.statuses[min(len(self.received), len(self.statuses)) - 1]
            location = {"Location": "/moved"} if 300 <= status < 400 else {}
            return web.Response(status=status, text=f"answered {status}", headers=location)

        async def moved(request: web.Request) -> web.Response:
            self.moved_hits += 1
            return web.Response(text="moved here")

        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_route("*", "/moved", moved)
        return app


async def start_pair(
    aiohttp_client: ClientFactory,
    aiohttp_server: Any,
    receiver: Receiver,
    **settings: Any,
) -> Standin:
    server = await aiohttp_server(receiver.app())
    url = str(server.make_url("/hook?code=very-secret"))
    return await start_standin(
        aiohttp_client, StandinSettings(webhook_url=url, step_seconds=STEP, **settings)
    )


async def deliveries(standin: Standin) -> list[dict[str, Any]]:
    body = await (await standin.client.get("/_standin/webhooks")).json()
    result: list[dict[str, Any]] = body["deliveries"]
    return result


async def wait_for_deliveries(standin: Standin, count: int) -> list[dict[str, Any]]:
    async def enough() -> bool:
        return len(await deliveries(standin)) >= count

    await wait_for(enough)
    return await deliveries(standin)


async def test_a_2xx_reply_archives_the_task_without_anyone_polling(
    aiohttp_client: ClientFactory, aiohttp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    receiver = Receiver(statuses=[204])
    standin = await start_pair(aiohttp_client, aiohttp_server, receiver)
    await standin.create_task(externalId="e-1")
    standin.clock.advance(REVIEW_DONE)
    records = await wait_for_deliveries(standin, 1)
    assert records[0]["status"] == 204
    assert records[0]["outcome"] == "archived"
    task = await standin.status(1001)
    assert (task["taskStatus"], task["taskStatusText"]) == (60, "Processed")
    assert (task["integrationStatus"], task["integrationStatusText"]) == (2, "Succeeded")
    assert receiver.content_types == ["application/json"]
    # Only the stand-in's own loggers: the fake receiver's access log shows its full URL.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("proxy.standin"))
    assert "archived" in ours
    assert "very-secret" not in ours


async def test_the_webhook_carries_the_export_document(
    aiohttp_client: ClientFactory, aiohttp_server: Any
) -> None:
    receiver = Receiver()
    standin = await start_pair(aiohttp_client, aiohttp_server, receiver)
    await standin.create_task(externalId="e-1")
    standin.clock.advance(REVIEW_DONE)
    await wait_for_deliveries(standin, 1)
    export = await (await standin.api("GET", "/sdtask/GetExportData/1001")).json()
    assert receiver.received == [export]
    assert export["externalId"] == "e-1"


async def test_no_webhook_is_sent_before_review_is_done(
    aiohttp_client: ClientFactory, aiohttp_server: Any
) -> None:
    receiver = Receiver()
    standin = await start_pair(aiohttp_client, aiohttp_server, receiver)
    await standin.create_task()
    standin.clock.advance(REVIEW_DONE - STEP / 2)
    await asyncio.sleep(0.15)  # three ticks
    assert receiver.received == []
    task = await standin.status(1001)
    assert (task["taskStatus"], task["integrationStatus"]) == (50, 0)


async def test_a_failed_delivery_goes_back_to_review_and_is_retried_a_step_later(
    aiohttp_client: ClientFactory, aiohttp_server: Any
) -> None:
    receiver = Receiver(statuses=[500, 200])
    standin = await start_pair(aiohttp_client, aiohttp_server, receiver)
    await standin.create_task()
    standin.clock.advance(REVIEW_DONE)
    first = await wait_for_deliveries(standin, 1)
    assert (first[0]["status"], first[0]["outcome"]) == (500, "back to review")
    assert first[0]["responseBody"] == "answered 500"
    task = await standin.status(1001)
    assert (task["taskStatus"], task["integrationStatusText"]) == (50, "Failed")
    await asyncio.sleep(0.15)  # the clock has not moved: no retry yet
    assert len(receiver.received) == 1
    standin.clock.advance(STEP)
    second = await wait_for_deliveries(standin, 2)
    assert (second[1]["attempt"], second[1]["outcome"]) == (2, "archived")
    assert (await standin.status(1001))["taskStatus"] == 60


async def test_deliveries_stop_after_the_maximum_attempts(
    aiohttp_client: ClientFactory, aiohttp_server: Any
) -> None:
    receiver = Receiver(statuses=[503])
    standin = await start_pair(aiohttp_client, aiohttp_server, receiver, webhook_max_attempts=2)
    await standin.create_task()
    standin.clock.advance(REVIEW_DONE)
    await wait_for_deliveries(standin, 1)
    standin.clock.advance(STEP)
    await wait_for_deliveries(standin, 2)
    standin.clock.advance(100 * STEP)
    await asyncio.sleep(0.15)
    assert len(receiver.received) == 2
    task = await standin.status(1001)
    assert (task["taskStatus"], task["integrationStatus"]) == (50, 3)


async def test_restart_allows_new_deliveries(
    aiohttp_client: ClientFactory, aiohttp_server: Any
) -> None:
    receiver = Receiver(statuses=[500, 200])
    standin = await start_pair(aiohttp_client, aiohttp_server, receiver, webhook_max_attempts=1)
    await standin.create_task()
    standin.clock.advance(REVIEW_DONE)
    await wait_for_deliveries(standin, 1)
    await standin.api("PATCH", "/sdtask/restartprocessing?taskId=1001")
    task = await standin.status(1001)
    assert (task["taskStatus"], task["integrationStatus"]) == (30, 0)
    standin.clock.advance(REVIEW_DONE)
    await wait_for_deliveries(standin, 2)
    assert (await standin.status(1001))["taskStatus"] == 60


async def test_a_redirect_is_not_followed_and_sends_the_task_back_to_review(
    aiohttp_client: ClientFactory, aiohttp_server: Any
) -> None:
    receiver = Receiver(statuses=[302])
    standin = await start_pair(aiohttp_client, aiohttp_server, receiver)
    await standin.create_task()
    standin.clock.advance(REVIEW_DONE)
    records = await wait_for_deliveries(standin, 1)
    assert (records[0]["status"], records[0]["outcome"]) == (302, "back to review")
    assert receiver.moved_hits == 0
    task = await standin.status(1001)
    assert (task["taskStatus"], task["integrationStatusText"]) == (50, "Failed")


async def test_restarting_a_task_the_webhook_archived_takes_it_out_of_the_archive(
    aiohttp_client: ClientFactory, aiohttp_server: Any
) -> None:
    receiver = Receiver(statuses=[200])
    standin = await start_pair(aiohttp_client, aiohttp_server, receiver)
    await standin.create_task()
    standin.clock.advance(REVIEW_DONE)
    await wait_for_deliveries(standin, 1)
    assert (await standin.status(1001))["taskStatus"] == 60
    await standin.api("PATCH", "/sdtask/restartprocessing?taskId=1001")
    task = await standin.status(1001)
    assert (task["taskStatus"], task["integrationStatus"]) == (30, 0)
    standin.clock.advance(REVIEW_DONE)
    records = await wait_for_deliveries(standin, 2)
    assert (records[1]["attempt"], records[1]["outcome"]) == (1, "archived")
    assert (await standin.status(1001))["taskStatus"] == 60


async def test_an_unreachable_receiver_sends_the_task_back_to_review(
    aiohttp_client: ClientFactory,
) -> None:
    port = free_port()  # a loopback port with nothing listening on it
    settings = StandinSettings(webhook_url=f"http://127.0.0.1:{port}/hook", step_seconds=STEP)
    standin = await start_standin(aiohttp_client, settings)
    await standin.create_task()
    standin.clock.advance(REVIEW_DONE)
    records = await wait_for_deliveries(standin, 1)
    assert records[0]["status"] is None
    assert records[0]["error"] == "ClientConnectorError"
    assert records[0]["outcome"] == "back to review"


async def test_a_slow_receiver_times_out_and_the_task_goes_back_to_review(
    aiohttp_client: ClientFactory, aiohttp_server: Any
) -> None:
    receiver = Receiver(hold=asyncio.Event())
    standin = await start_pair(
        aiohttp_client, aiohttp_server, receiver, webhook_timeout_seconds=0.1
    )
    await standin.create_task()
    standin.clock.advance(REVIEW_DONE)
    records = await wait_for_deliveries(standin, 1)
    assert records[0]["error"] is not None
    assert "Timeout" in records[0]["error"]
    assert (await standin.status(1001))["taskStatus"] == 50
    receiver.hold.set()


async def test_a_restart_during_delivery_discards_the_old_outcome(
    aiohttp_client: ClientFactory, aiohttp_server: Any
) -> None:
    receiver = Receiver(hold=asyncio.Event())
    standin = await start_pair(aiohttp_client, aiohttp_server, receiver)
    await standin.create_task()
    standin.clock.advance(REVIEW_DONE)

    async def posted() -> bool:
        return len(receiver.received) == 1

    await wait_for(posted)
    assert (await standin.status(1001))["integrationStatusText"] == "Pending"
    await standin.api("PATCH", "/sdtask/restartprocessing?taskId=1001")
    receiver.hold.set()
    await asyncio.sleep(0.1)
    assert await deliveries(standin) == []
    task = await standin.status(1001)
    assert (task["taskStatus"], task["integrationStatus"]) == (30, 0)


async def test_the_admin_view_never_shows_the_webhook_query_string(
    aiohttp_client: ClientFactory, aiohttp_server: Any
) -> None:
    standin = await start_pair(aiohttp_client, aiohttp_server, Receiver())
    text = await (await standin.client.get("/_standin/webhooks")).text()
    assert "very-secret" not in text
    assert "/hook" in text


async def test_no_log_line_at_any_level_carries_the_webhook_query_string(
    aiohttp_client: ClientFactory, aiohttp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    standin = await start_pair(aiohttp_client, aiohttp_server, Receiver(statuses=[500]))
    await standin.create_task()
    standin.clock.advance(REVIEW_DONE)
    await wait_for_deliveries(standin, 1)
    # Only the stand-in's own loggers: the fake receiver's access log shows its full URL.
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("proxy.standin")]
    assert any("stand-in assembled" in line and "/hook" in line for line in ours)
    assert any("back to review" in line for line in ours)
    assert not [line for line in ours if "very-secret" in line]


async def test_a_transcript_task_sends_the_transcript_export(
    aiohttp_client: ClientFactory, aiohttp_server: Any
) -> None:
    receiver = Receiver()
    standin = await start_pair(
        aiohttp_client, aiohttp_server, receiver, workspaces=("Transcripts",)
    )
    await standin.create_task(workspaceId=2, context={"url": "https://x.example/call.mp3"})
    standin.clock.advance(REVIEW_DONE)
    await wait_for_deliveries(standin, 1)
    assert receiver.received[0]["exportedFileUrl"].endswith("sig=standin")
    assert len(receiver.received[0]["speakers"]) == 2


async def test_every_organizations_tasks_are_delivered_with_their_own_export(
    aiohttp_client: ClientFactory, aiohttp_server: Any
) -> None:
    receiver = Receiver()
    organizations = (
        OrganizationSettings("a", "a-client", "a-secret"),
        OrganizationSettings("b", "b-client", "b-secret"),
    )
    standin = await start_pair(
        aiohttp_client,
        aiohttp_server,
        receiver,
        organizations=organizations,
        workspaces=("Transcripts",),
    )
    await standin.authorize_as(token_form("a-client", "a-secret"))
    await standin.create_task()
    await standin.authorize_as(token_form("b-client", "b-secret"))
    await standin.create_task(workspaceId=4, context={"url": "https://x.example/call.mp3"})
    standin.clock.advance(REVIEW_DONE)
    await wait_for_deliveries(standin, 2)
    by_task = {export["taskId"]: export for export in receiver.received}
    assert "chunks" in by_task[1001]  # a's document export
    assert "segments" in by_task[1002]  # b's transcript workspace: the transcript export
    assert (await standin.status(1002))["taskStatus"] == 60
    assert (await standin.api("GET", "/sdtask/status?taskId=1001")).status == 404


async def test_without_a_webhook_review_archives_on_its_own(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client, StandinSettings(step_seconds=STEP))
    await standin.create_task()
    standin.clock.advance(REVIEW_DONE)
    task = await standin.status(1001)
    assert (task["taskStatus"], task["integrationStatus"]) == (60, 0)
    shown = await (await standin.client.get("/_standin/webhooks")).json()
    assert shown == {"url": None, "maxAttempts": 3, "deliveries": []}


@pytest.mark.parametrize(("step", "tick"), [(0.0, 0.05), (0.2, 0.2), (30.0, 1.0)])
def test_tick_interval(step: float, tick: float) -> None:
    assert tick_seconds(step) == tick


def test_redact_drops_query_and_fragment() -> None:
    assert redact("https://u:p@h.example:8443/a/b?sig=1#x") == "https://u:p@h.example:8443/a/b"


def test_delivery_due_rules() -> None:
    lifecycle = Lifecycle(step_seconds=1.0, auto_archive=False)
    request = TaskRequest(url="https://x.example/a.pdf")
    task = Task(1, 1, 1, request, START_WALL, 0.0, START_WALL, review_due_at=5.0)
    assert not delivery_due(task, lifecycle, 4.99, 3)
    assert delivery_due(task, lifecycle, 5.0, 3)
    task.delivering = True
    assert not delivery_due(task, lifecycle, 5.0, 3)
    task.delivering, task.delivery_attempts = False, 3
    assert not delivery_due(task, lifecycle, 5.0, 3)
    failing = Task(2, 1, 2, TaskRequest(url="ftp://x/a"), START_WALL, 0.0, START_WALL, 5.0)
    assert not delivery_due(failing, lifecycle, 5.0, 3)
