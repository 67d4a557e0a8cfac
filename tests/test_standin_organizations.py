"""Several organizations in one stand-in: each token sees its own organization's data only.

Two organizations, `acme` and `globex`, on one stand-in served on loopback: ids are unique
across both, another organization's task or batch answers 404 exactly as an unknown id does, and
lists never show the other's objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from proxy.standin import StandinSettings
from proxy.standin.settings import OrganizationSettings
from tests.fakes import free_port, proxy_command
from tests.standin_helpers import (
    API,
    ClientFactory,
    Standin,
    ok_json,
    problem,
    run_standin_command,
    start_standin,
    token_form,
    wait_until_serving,
)

ACME = OrganizationSettings("acme", "acme-client", "acme-secret")
GLOBEX = OrganizationSettings("globex", "globex-client", "globex:secret")  # a colon is fine
TWO = StandinSettings(organizations=(ACME, GLOBEX), workspaces=("Meeting transcripts",))
SINCE = "startDate=2000-01-01"


@dataclass
class Caller:
    """One organization's client: calls the API with a token issued to its credentials."""

    standin: Standin
    token: str

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        return await self.standin.client.request(method, API + path, headers=headers, **kwargs)

    async def get(self, path: str) -> Any:
        return await ok_json(await self.call("GET", path))

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await ok_json(await self.call("POST", path, json=body))

    async def create_task(self, **body: Any) -> dict[str, Any]:
        body.setdefault("context", {"url": "https://files.example.com/a.pdf"})
        result: dict[str, Any] = await self.post("/sdtask/process", body)
        return result


async def callers(aiohttp_client: ClientFactory) -> tuple[Caller, Caller]:
    standin = await start_standin(aiohttp_client, TWO)
    acme = Caller(standin, await standin.token(token_form(ACME.client_id, ACME.client_secret)))
    globex_form = token_form(GLOBEX.client_id, GLOBEX.client_secret)
    return acme, Caller(standin, await standin.token(globex_form))


async def test_each_organization_has_its_own_workspaces_and_tenant_id(
    aiohttp_client: ClientFactory,
) -> None:
    acme, globex = await callers(aiohttp_client)
    mine = await acme.get("/sdworkspace/CurrentWorkspaces")
    theirs = await globex.get("/sdworkspace/CurrentWorkspaces")
    assert [w["workspaceId"] for w in mine] == [1, 2]
    assert [w["workspaceId"] for w in theirs] == [3, 4]
    assert {w["tenantId"] for w in mine} == {1}
    assert {w["tenantId"] for w in theirs} == {2}
    assert [w["workspaceName"] for w in theirs] == ["Default Workspace", "Meeting transcripts"]
    assert [w["isDefault"] for w in theirs] == [True, False]


async def test_ids_are_unique_across_organizations(aiohttp_client: ClientFactory) -> None:
    acme, globex = await callers(aiohttp_client)
    tasks = [await acme.create_task(), await globex.create_task(), await acme.create_task()]
    assert [t["taskId"] for t in tasks] == [1001, 1002, 1003]
    assert [t["taskNumber"] for t in tasks] == [1, 1, 2]  # numbered per workspace
    assert tasks[1]["workspaceId"] == 3  # globex's default workspace
    batches = [
        await globex.post("/sdbatch", {"displayName": "g"}),
        await acme.post("/sdbatch", {"displayName": "a"}),
    ]
    assert [b["batchId"] for b in batches] == [101, 102]
    users = [await acme.get("/tenant/allusers"), await globex.get("/tenant/allusers")]
    assert [[u["id"] for u in listed] for listed in users] == [[1], [2]]


def without_trace(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "traceId"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sdtask/status?taskId={task}"),
        ("PATCH", "/sdtask/restartprocessing?taskId={task}"),
        ("GET", "/sdtask/GetExportData/{task}"),
        ("GET", "/sdtask/GetExportData/Transcript/{task}"),
        ("GET", "/sdbatch?batchId={batch}"),
    ],
)
async def test_another_organizations_id_answers_exactly_as_an_unknown_id(
    aiohttp_client: ClientFactory, method: str, path: str
) -> None:
    acme, globex = await callers(aiohttp_client)
    task = (await globex.create_task())["taskId"]
    batch = (await globex.post("/sdbatch", {"displayName": "g"}))["batchId"]
    foreign = await problem(await acme.call(method, path.format(task=task, batch=batch)), 404)
    unknown_path = path.format(task=task + 1, batch=batch + 1)
    unknown = await problem(await acme.call(method, unknown_path), 404)
    shown = without_trace(unknown)
    if "detail" in shown:
        shown["detail"] = shown["detail"].replace(str(task + 1), str(task))
        shown["detail"] = shown["detail"].replace(str(batch + 1), str(batch))
    assert without_trace(foreign) == shown
    owner = await globex.call(method, path.format(task=task, batch=batch))
    assert (
        owner.status != 404
    )  # 200, or 409/400 for an export that is not ready or not a transcript


async def test_another_organizations_task_is_404_by_external_id_and_for_updates(
    aiohttp_client: ClientFactory,
) -> None:
    acme, globex = await callers(aiohttp_client)
    await globex.create_task(externalId="inv-1")
    await problem(await acme.call("GET", "/sdtask/status?externalId=inv-1"), 404)
    body = {"externalIntegrationStatus": "done"}
    path = "/sdtask/externalIntegrationStatus?externalId=inv-1"
    await problem(await acme.call("PATCH", path, json=body), 404)
    assert (await acme.create_task(externalId="inv-1"))["externalId"] == "inv-1"  # per org
    assert (await globex.get("/sdtask/status?externalId=inv-1"))["taskId"] == 1001


async def test_another_organizations_workspace_and_speakers_are_not_found(
    aiohttp_client: ClientFactory,
) -> None:
    acme, globex = await callers(aiohttp_client)
    task = await globex.create_task(workspaceId=4)  # globex's transcript workspace
    speakers = f"/transcripts/speakers/tasks/{task['taskId']}/4"
    assert (await globex.get(speakers))["speakers"]
    await problem(await acme.call("GET", speakers), 404)
    await problem(await acme.call("GET", "/transcripts/speakers/workspaces/4"), 404)
    await problem(await acme.call("GET", "/sdworkspace/allusers/3"), 404)


async def test_another_organizations_workspace_or_batch_cannot_be_referenced(
    aiohttp_client: ClientFactory,
) -> None:
    acme, globex = await callers(aiohttp_client)
    batch = (await globex.post("/sdbatch", {"displayName": "g"}))["batchId"]
    context = {"url": "https://files.example.com/a.pdf"}
    response = await acme.call(
        "POST", "/sdtask/process", json={"context": context, "batchId": batch}
    )
    assert (await problem(response, 400))["errors"] == {
        "BatchId": [f"Batch {batch} does not exist."]
    }
    response = await acme.call("POST", "/sdbatch", json={"displayName": "x", "workspaceId": 3})
    assert "WorkspaceId" in (await problem(response, 400))["errors"]


async def test_lists_show_only_the_callers_organization(aiohttp_client: ClientFactory) -> None:
    acme, globex = await callers(aiohttp_client)
    await acme.create_task()
    await globex.create_task()
    await globex.create_task()
    await acme.post("/sdbatch", {"displayName": "a"})
    await globex.post("/sdbatch", {"displayName": "g"})
    assert [t["taskId"] for t in await acme.get(f"/sdtask/statuslist?{SINCE}")] == [1001]
    page = await globex.get(f"/sdtask/statuslistpaginated?{SINCE}")
    assert ([t["taskId"] for t in page["items"]], page["totalCount"]) == ([1002, 1003], 2)
    batches = await acme.get("/sdbatch/paginated")
    assert ([b["batchId"] for b in batches["items"]], batches["totalCount"]) == ([101], 1)


async def test_invited_users_join_the_inviting_organization_only(
    aiohttp_client: ClientFactory,
) -> None:
    acme, globex = await callers(aiohttp_client)
    invite = {"users": [{"email": "new@example.com", "roleName": "Viewer"}]}
    response = await acme.call("POST", "/tenant/inviteusers", json=invite)
    assert response.status == 200
    assert [u["email"] for u in await acme.get("/tenant/allusers")] == [
        "admin@example.com",
        "new@example.com",
    ]
    assert [u["email"] for u in await globex.get("/tenant/allusers")] == ["admin@example.com"]


async def test_a_token_is_issued_only_for_a_configured_pair(aiohttp_client: ClientFactory) -> None:
    standin = await start_standin(aiohttp_client, TWO)
    for client_id, secret in [
        ("acme-client", "globex:secret"),  # another organization's secret
        ("demo-client", "demo-secret"),  # the default organization is replaced
        ("globex-client", "globex"),  # the secret is everything after the second colon
    ]:
        response = await standin.client.post("/connect/token", data=token_form(client_id, secret))
        assert (response.status, await response.json()) == (400, {"error": "invalid_client"})


async def test_one_organization_by_default_keeps_todays_ids_and_tenant(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await start_standin(aiohttp_client)
    workspaces = await ok_json(await standin.api("GET", "/sdworkspace/CurrentWorkspaces"))
    assert [(w["workspaceId"], w["tenantId"]) for w in workspaces] == [(1, 1)]
    assert (await standin.create_task())["taskId"] == 1001


async def test_the_standin_command_serves_each_organization_its_own_data() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["--organization=a:a-client:a:secret", "--organization", "b:b-client:b-secret"]
    async with proxy_command("standin", "--listen", f"127.0.0.1:{port}", *args):
        await wait_until_serving(base)
        async with aiohttp.ClientSession(base) as session:
            seen = []
            for client_id, secret in [("a-client", "a:secret"), ("b-client", "b-secret")]:
                async with session.post("/connect/token", data=token_form(client_id, secret)) as r:
                    token = (await r.json())["access_token"]
                headers = {"Authorization": f"Bearer {token}"}
                async with session.get(
                    API + "/sdworkspace/CurrentWorkspaces", headers=headers
                ) as r:
                    seen.append([(w["workspaceId"], w["tenantId"]) for w in await r.json()])
    assert seen == [[(1, 1)], [(2, 2)]]


@pytest.mark.parametrize(
    "value", ["Acme:acme-client:s3cret-value", "acme-client:s3cret-value", "s3cret-value"]
)
async def test_a_malformed_organization_stops_the_command_with_one_line_and_no_secret(
    value: str,
) -> None:
    status, out, err = await run_standin_command("--organization", value)
    assert status == 2
    assert err.startswith("smartdoc-proxy: --organization: ")
    assert err.count("\n") == 1
    assert "s3cret-value" not in out + err
