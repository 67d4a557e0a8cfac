"""The inspector's HAR export: valid HAR 1.2 by the schema nobody here wrote (har-validator,
from npm), readable by a HAR library nobody here wrote (haralyzer, from PyPI), and replayed by
``smartdoc-proxy standin --replay`` with the same answers the proxy recorded."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from haralyzer import HarEntry, HarParser
from yarl import URL

from proxy.app import create_app
from proxy.config import load_config
from proxy.exchange import Exchange
from proxy.inspector import har
from proxy.inspector.buffer import Buffer, Snapshot
from proxy.standin import StandinSettings, create_standin_app
from tests.fakes import FakeClock, free_port, proxy_command
from tests.needs import missing
from tests.standin_helpers import wait_until_serving

API = "/api/v1.0/external"
DOCUMENT = "https://example.test/a.pdf"
VALIDATOR = Path(__file__).parent / "har"
Answer = tuple[int, str, str]  # status, Content-Type, body


@dataclass
class Proxied:
    url: str
    standin_clock: FakeClock


async def proxy_in_front_of(aiohttp_server, upstream: str) -> str:  # type: ignore[no-untyped-def]
    settings = StandinSettings()
    config = load_config(
        {"upstream": upstream, "client_id": settings.client_id, "inspect_bodies": "true"},
        {"SMARTDOC_CLIENT_SECRET": settings.client_secret},
    )
    proxy: TestServer = await aiohttp_server(create_app(config))
    return str(proxy.make_url("")).rstrip("/")


@pytest.fixture
async def recording(aiohttp_server) -> Proxied:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    standin = await aiohttp_server(create_standin_app(StandinSettings(), clock=clock))
    url = await proxy_in_front_of(aiohttp_server, str(standin.make_url("/")))
    return Proxied(url, clock)


async def session_of_requests(base: str, clock: FakeClock | None) -> list[Answer]:
    """What a client does, and what it is answered: the same requests each time."""
    answers = []
    async with aiohttp.ClientSession(base) as session:

        async def call(method: str, path: str, body: object = None) -> None:
            async with session.request(method, API + path, json=body) as response:
                answers.append((response.status, response.content_type, await response.text()))

        await call("GET", "/sdworkspace/CurrentWorkspaces")
        task = {"displayName": "invoice", "externalId": "inv-1", "context": {"url": DOCUMENT}}
        await call("POST", "/sdtask/process", task)
        await call("GET", "/sdtask/status?taskId=1001")
        if clock is not None:
            clock.advance(1.5)  # the task moves on: the same request, another answer
        await call("GET", "/sdtask/status?taskId=1001")
        await call("GET", "/sdtask/status?taskId=1001")
        await call("GET", "/sdbatch?batchId=999")  # a 404, as problem+json
        await call("POST", "/sdtask/process", {})  # a 400, as problem+json
    return answers


async def export(base: str, query: str = "") -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/_proxy/exchanges.har{query}") as response,
    ):
        assert response.status == 200
        document: dict[str, object] = json.loads(await response.read())
        return document


def validate_with_har_validator(path: Path) -> str:
    node = shutil.which("node")
    if node is None:
        missing("node is not installed (.ci/run installs nodejs)")
    if not (VALIDATOR / "node_modules" / "har-validator").is_dir():
        missing(f"har-validator is not installed: run npm ci --prefix {VALIDATOR}")
    done = subprocess.run(
        [node, str(VALIDATOR / "validate.js"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_the_export_is_valid_har_1_2_by_its_json_schema(
    recording: Proxied, tmp_path: Path
) -> None:
    await session_of_requests(recording.url, recording.standin_clock)
    path = tmp_path / "recorded.har"
    path.write_text(json.dumps(await export(recording.url)))

    assert (await asyncio.to_thread(validate_with_har_validator, path)).strip() == "valid"


async def test_the_validator_does_refuse_a_broken_export(
    recording: Proxied, tmp_path: Path
) -> None:
    await session_of_requests(recording.url, recording.standin_clock)
    document = await export(recording.url)
    del document["log"]["entries"][0]["response"]["status"]  # type: ignore[index]
    path = tmp_path / "broken.har"
    path.write_text(json.dumps(document))

    with pytest.raises(AssertionError, match="status"):
        await asyncio.to_thread(validate_with_har_validator, path)


async def test_a_har_library_reads_the_export(recording: Proxied) -> None:
    answers = await session_of_requests(recording.url, recording.standin_clock)

    parser = HarParser(await export(recording.url))
    entries = [HarEntry(entry) for entry in parser.har_data["entries"]]

    assert parser.creator == {"name": "smartdoc-proxy", "version": version("smartdoc-proxy")}
    assert parser.version == "1.2"
    methods = ["GET", "POST", "GET", "GET", "GET", "GET", "POST"]
    assert [e.request.method for e in entries] == methods
    assert entries[2].request.url.endswith(f"{API}/sdtask/status?taskId=1001")
    assert entries[2].request.queryString == [{"name": "taskId", "value": "1001"}]
    assert [e.response.status for e in entries] == [status for status, _, _ in answers]
    assert [e.response.text for e in entries] == [body for _, _, body in answers]
    assert entries[1].request.text is not None
    assert json.loads(entries[1].request.text)["externalId"] == "inv-1"
    assert entries[0].startTime is not None
    assert entries[0].request.host is not None  # the client's own headers
    assert entries[1].response.mimeType.startswith("application/json")
    assert all(e.startTime <= later.startTime for e, later in itertools.pairwise(entries))


async def test_the_filtered_export_holds_only_what_the_filter_shows(recording: Proxied) -> None:
    await session_of_requests(recording.url, recording.standin_clock)

    document = await export(recording.url, "?status=4xx")

    statuses = [e["response"]["status"] for e in document["log"]["entries"]]  # type: ignore[index]
    assert statuses == [404, 400]


async def test_a_recording_replayed_by_the_standin_answers_as_the_api_did(
    recording: Proxied,
    aiohttp_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    recorded = await session_of_requests(recording.url, recording.standin_clock)
    path = tmp_path / "recorded.har"
    path.write_text(json.dumps(await export(recording.url)))
    # The same requests, through another proxy, to a stand-in that replays the file: its
    # clock never moves, so only the recording can give the second status.
    port = free_port()
    async with proxy_command("standin", "--listen", f"127.0.0.1:{port}", "--replay", str(path)):
        await wait_until_serving(f"http://127.0.0.1:{port}")
        replaying = await proxy_in_front_of(aiohttp_server, f"http://127.0.0.1:{port}")
        replayed = await session_of_requests(replaying, None)

    assert replayed == recorded
    assert recorded[2] != recorded[3]  # two answers to one request, replayed in their order
    assert recorded[3] == recorded[4]  # and the last one repeats


def snapshot_of(target: str, **facts: object) -> Snapshot:
    finished = Exchange("GET", target, "127.0.0.1")
    for name, value in facts.items():
        setattr(finished, name, value)
    buffer = Buffer(1, wall_clock=lambda: 1_800_000_000.0)
    buffer.observe(finished)
    (kept,) = buffer.snapshots()
    return kept


@pytest.mark.parametrize(
    ("target", "url"),
    [
        ("/api/x?a=1&a=2", "https://api.example/api/x?a=1&a=2"),
        ("/a%2Fb", "https://api.example/a%2Fb"),
        ("https://api.example/api/x", "https://api.example/api/x"),  # absolute-form, as sent
        ("*", "https://api.example/"),  # OPTIONS *: no path of its own
    ],
)
def test_an_entry_s_url_is_the_upstream_s_origin_with_the_target_as_sent(
    target: str, url: str
) -> None:
    assert har.url(snapshot_of(target), URL("https://api.example")) == url


@pytest.mark.parametrize(
    ("facts", "comment"),
    [
        ({"status": 200}, None),
        ({"status": 499}, "the client left before the answer"),
        ({"status": 200, "cut": "upstream closed", "body_bytes": 10},
         "cut after 10 bytes: upstream closed"),
        ({"status": 200, "resent": True}, "resent with a fresh token after a 401"),
    ],
)  # fmt: skip
def test_an_entry_says_what_happened_to_it_in_its_comment(
    facts: dict[str, object], comment: str | None
) -> None:
    entry = har.entry(snapshot_of("/api/x", **facts), URL("https://api.example"))

    assert entry.get("comment") == comment
    assert entry["response"]["statusText"] == ("" if facts["status"] == 499 else "OK")  # type: ignore[index]
