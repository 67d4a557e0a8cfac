"""`--replay FILE.har`: recorded answers ahead of the simulation, and malformed files refused.

The loader's rules are tables; the replay itself runs on a stand-in served on loopback, and the
command line is driven as a real `python -m proxy standin --replay` process.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.standin import StandinSettings, StandinSettingsError, add_arguments, settings_from_args
from proxy.standin.har import HarError, Recording, load_recording, parse_har, replayable_headers
from tests.fakes import free_port, proxy_command
from tests.standin_helpers import (
    API,
    TOKEN_FORM,
    ClientFactory,
    Standin,
    problem,
    run_standin_command,
    start_standin,
    wait_until_serving,
)

HOST = "https://cloud.smartdocumentor.net"
STATUS = f"{API}/sdtask/status?taskId=5"


def entry(method: str, url: str, status: int = 200, **response: Any) -> dict[str, Any]:
    """One HAR entry as developer tools write it; `response` overrides its response fields."""
    recorded: dict[str, Any] = {
        "status": status,
        "statusText": "",
        "headers": [{"name": "Content-Type", "value": "application/json"}],
        "content": {"size": 2, "mimeType": "application/json", "text": "{}"},
    }
    recorded.update(response)
    request = {"method": method, "url": url, "headers": [], "queryString": []}
    return {"startedDateTime": "2024-05-01T12:00:00.000Z", "request": request, "response": recorded}


def har(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"log": {"version": "1.2", "creator": {"name": "test"}, "entries": list(entries)}}


def text(body: str, **content: Any) -> dict[str, Any]:
    return {"mimeType": "application/json", "text": body, **content}


async def replaying(aiohttp_client: ClientFactory, *entries: dict[str, Any]) -> Standin:
    recording = Recording("test.har", parse_har(har(*entries)))
    standin = await start_standin(aiohttp_client, StandinSettings(replay=recording))
    await standin.authorize()
    return standin


async def get(standin: Standin, target: str, **kwargs: Any) -> tuple[int, str]:
    response = await standin.api(kwargs.pop("method", "GET"), target.removeprefix(API), **kwargs)
    return response.status, await response.text()


async def test_recorded_answers_come_in_order_then_the_last_repeats(
    aiohttp_client: ClientFactory,
) -> None:
    standin = await replaying(
        aiohttp_client,
        entry("GET", HOST + STATUS, content=text('"first"')),
        entry("GET", HOST + API + "/other", content=text('"unrelated"')),
        entry("GET", HOST + STATUS, 202, content=text('"second"')),
        entry("GET", HOST + STATUS, 500, content=text('"last"')),
    )
    answers = [await get(standin, STATUS) for _ in range(4)]
    assert answers == [(200, '"first"'), (202, '"second"'), (500, '"last"'), (500, '"last"')]
    assert await get(standin, API + "/other") == (200, '"unrelated"')


async def test_recorded_status_text_headers_and_base64_body_are_replayed(
    aiohttp_client: ClientFactory,
) -> None:
    png = bytes(range(256))
    headers = [
        {"name": "Content-Type", "value": "image/png"},
        {"name": "Set-Cookie", "value": "a=1"},
        {"name": "Set-Cookie", "value": "b=2"},
        {"name": "X-Recorded", "value": "yes"},
    ]
    content = {
        "mimeType": "image/png",
        "text": base64.b64encode(png).decode(),
        "encoding": "base64",
    }
    path = API + "/sdtask/GetExportData/77"
    standin = await replaying(
        aiohttp_client,
        entry("GET", HOST + path, 203, statusText="Recorded", headers=headers, content=content),
    )
    response = await standin.api("GET", path.removeprefix(API))
    assert (response.status, response.reason) == (203, "Recorded")
    assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
    assert (response.headers["X-Recorded"], response.content_type) == ("yes", "image/png")
    assert await response.read() == png


async def test_recorded_framing_headers_do_not_corrupt_the_connection(
    aiohttp_client: ClientFactory,
) -> None:
    headers = [
        {"name": "Content-Length", "value": "999"},
        {"name": "Transfer-Encoding", "value": "chunked"},
        {"name": "Connection", "value": "close, X-Hop"},
        {"name": "X-Hop", "value": "named by Connection"},
        {"name": "Content-Encoding", "value": "gzip"},  # HAR keeps bodies decoded
        {"name": ":status", "value": "200"},
    ]
    standin = await replaying(
        aiohttp_client, entry("GET", HOST + STATUS, headers=headers, content=text('{"a": 1}'))
    )
    for _ in range(2):  # the second answer comes over the same keep-alive connection
        response = await standin.api("GET", STATUS.removeprefix(API))
        assert await response.json() == {"a": 1}
        assert response.headers["Content-Length"] == "8"
        for dropped in ("Transfer-Encoding", "X-Hop", "Content-Encoding", "Connection"):
            assert dropped not in response.headers
        assert response.content_type == "application/json"  # from content.mimeType


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", f"{API}/sdtask/status?taskid=5"),  # the query's case differs
        ("GET", f"{API}/sdtask/status?taskId=5&x=1"),
        ("GET", f"{API}/sdtask/status?taskId=+5"),  # the same value to the simulation
        ("GET", f"{API}/sdtask/status?taskId=5&"),
        ("GET", f"{API}/sdtask/status"),
        ("PATCH", f"{API}/sdtask/status?taskId=5"),
    ],
)
async def test_anything_not_recorded_falls_back_to_the_simulation(
    aiohttp_client: ClientFactory, method: str, target: str
) -> None:
    standin = await replaying(aiohttp_client, entry("GET", HOST + STATUS, content=text('"rec"')))
    status, body = await get(standin, target, method=method)
    assert body != '"rec"'
    assert status in (400, 404, 405)  # the stand-in's own answers for these requests


async def test_query_order_counts_when_matching(aiohttp_client: ClientFactory) -> None:
    recorded = f"{API}/sdtask/statuslist?startDate=2000-01-01&workspaceId=1"
    standin = await replaying(aiohttp_client, entry("GET", HOST + recorded, content=text('"rec"')))
    assert await get(standin, recorded) == (200, '"rec"')
    status, body = await get(standin, f"{API}/sdtask/statuslist?workspaceId=1&startDate=2000-01-01")
    assert (status, body) == (200, "[]")  # simulated: no tasks yet


async def test_a_recorded_request_still_needs_a_valid_token(aiohttp_client: ClientFactory) -> None:
    standin = await replaying(aiohttp_client, entry("GET", HOST + STATUS, content=text('"rec"')))
    bare = await standin.client.get(STATUS)
    assert (bare.status, bare.headers["WWW-Authenticate"]) == (401, "Bearer")
    forged = await standin.client.get(STATUS, headers={"Authorization": "Bearer forged"})
    assert forged.status == 401
    assert await get(standin, STATUS) == (200, '"rec"')  # nothing was used up by the 401s


async def test_the_token_endpoint_is_never_replayed(aiohttp_client: ClientFactory) -> None:
    recorded_token = text('{"access_token": "recorded", "expires_in": 1, "token_type": "Bearer"}')
    standin = await replaying(
        aiohttp_client,
        entry("POST", HOST + "/connect/token", content=recorded_token),
        entry("GET", HOST + "/_standin/faults", content=text('"rec"')),
    )
    response = await standin.client.post("/connect/token", data=TOKEN_FORM)
    token = (await response.json())["access_token"]
    assert token != "recorded"
    assert (await standin.client.get("/_standin/faults")).status == 200
    assert await (await standin.client.get("/_standin/faults")).text() != '"rec"'
    await problem(
        await standin.client.get(STATUS, headers={"Authorization": f"Bearer {token}"}), 404
    )


@pytest.mark.parametrize(
    ("url", "target"),
    [
        (HOST + "/api/x?b=2&a=1", "/api/x?b=2&a=1"),
        (HOST + "/api/x?", "/api/x?"),
        (HOST + "/api/x#fragment", "/api/x"),
        (HOST + "/api/x?q=1#fragment", "/api/x?q=1"),
        (HOST + "/api/a%2Fb?x=%20", "/api/a%2Fb?x=%20"),
        ("http://127.0.0.1:8081/api/x", "/api/x"),
        ("/api/x?q", "/api/x?q"),
        (HOST, "/"),
    ],
)
def test_the_recorded_target_is_the_raw_path_and_query(url: str, target: str) -> None:
    (exchange,) = parse_har(har(entry("GET", url)))
    assert (exchange.method, exchange.target) == ("GET", target)


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        ([("Content-Type", "a/b"), ("Content-Length", "3")], [("Content-Type", "a/b")]),
        ([("transfer-encoding", "chunked"), ("TE", "x"), ("Upgrade", "h2c")], []),
        ([("Keep-Alive", "5"), ("Proxy-Connection", "x"), ("Trailer", "x")], []),
        ([("Connection", "X-A, x-b"), ("X-A", "1"), ("X-B", "2"), ("X-C", "3")], [("X-C", "3")]),
        ([("Content-Encoding", "br"), ("Set-Cookie", "a"), ("Set-Cookie", "b")],
         [("Set-Cookie", "a"), ("Set-Cookie", "b")]),
    ],
)  # fmt: skip
def test_only_headers_that_describe_this_response_are_kept(
    headers: list[tuple[str, str]], kept: list[tuple[str, str]]
) -> None:
    assert list(replayable_headers(headers)) == kept


def test_content_type_comes_from_mime_type_only_when_no_header_says_it() -> None:
    none = entry("GET", HOST, headers=[], content=text("{}", mimeType="text/plain"))
    own = entry("GET", HOST, headers=[{"name": "content-type", "value": "a/b"}])
    nothing = entry("GET", HOST, headers=[], content={"text": "x"})
    parsed = [exchange.response.headers for exchange in parse_har(har(none, own, nothing))]
    assert parsed == [(("Content-Type", "text/plain"),), (("content-type", "a/b"),), ()]


def test_a_response_without_text_is_an_empty_body_and_base64_may_be_wrapped() -> None:
    empty = entry("GET", HOST, 204, content={"size": 0, "mimeType": ""})
    wrapped = entry("GET", HOST, content={"text": "aGVs\nbG8=", "encoding": "base64"})
    bodies = [exchange.response.body for exchange in parse_har(har(empty, wrapped))]
    assert bodies == [b"", b"hello"]


def broken(**changes: Any) -> dict[str, Any]:
    """A HAR of two good entries and a third changed by `changes` (None deletes a key).

    Keys are dotted paths into the entry, e.g. `response.status`.
    """
    bad = entry("GET", HOST + STATUS)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        target = bad
        for key in parents:
            target = target[key]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return har(entry("GET", HOST + STATUS), entry("GET", HOST + STATUS), bad)


MALFORMED = [
    ([], "must be a JSON object with a log"),
    ({}, "log: missing"),
    ({"log": []}, "log: must be an object"),
    ({"log": {}}, "log.entries: missing"),
    ({"log": {"entries": {}}}, "log.entries: must be an array"),
    (har("entry"), "log.entries[0]: must be an object"),
    (broken(request=None), "log.entries[2].request: missing"),
    (broken(**{"request.method": None}), "log.entries[2].request.method: missing"),
    (broken(**{"request.method": "GET /"}), "log.entries[2].request.method: 'GET /' is not a"),
    (broken(**{"request.url": 7}), "log.entries[2].request.url: must be a string"),
    (broken(**{"request.url": "ftp://x/y"}), "log.entries[2].request.url: must be an http(s)"),
    (broken(**{"request.url": "/a\r\nb"}), "log.entries[2].request.url: contains a line break"),
    (broken(response=None), "log.entries[2].response: missing"),
    (broken(**{"response.status": None}), "log.entries[2].response.status: missing"),
    (broken(**{"response.status": "200"}), "log.entries[2].response.status: must be a whole"),
    (broken(**{"response.status": True}), "log.entries[2].response.status: must be a whole"),
    (broken(**{"response.status": 0}), "log.entries[2].response.status: 0 is not a final"),
    (broken(**{"response.status": 101}), "log.entries[2].response.status: 101 is not a final"),
    (broken(**{"response.status": 600}), "log.entries[2].response.status: 600 is not a final"),
    (broken(**{"response.statusText": 1}), "log.entries[2].response.statusText: must be a str"),
    (broken(**{"response.statusText": "OK\r\nX: 1"}), "log.entries[2].response.statusText: co"),
    (broken(**{"response.headers": None}), "log.entries[2].response.headers: missing"),
    (broken(**{"response.headers": {}}), "log.entries[2].response.headers: must be an array"),
    (broken(**{"response.headers": ["X: 1"]}), "log.entries[2].response.headers[0]: must be an"),
    (
        broken(**{"response.headers": [{"value": "1"}]}),
        "log.entries[2].response.headers[0].name: m",
    ),
    (broken(**{"response.headers": [{"name": "X Y", "value": "1"}]}), "headers[0].name: 'X Y' i"),
    (
        broken(**{"response.headers": [{"name": "X"}]}),
        "log.entries[2].response.headers[0].value: m",
    ),
    (broken(**{"response.headers": [{"name": "X", "value": "a\nb"}]}), "headers[0].value: contai"),
    (broken(**{"response.content": None}), "log.entries[2].response.content: missing"),
    (broken(**{"response.content": "{}"}), "log.entries[2].response.content: must be an object"),
    (broken(**{"response.content.text": 5}), "log.entries[2].response.content.text: must be a s"),
    (broken(**{"response.content.mimeType": "a\nb"}), "response.content.mimeType: contains a li"),
    (broken(**{"response.content.encoding": "gzip"}), "content.encoding: 'gzip' is not supported"),
    (broken(**{"response.content.encoding": "base64"}), "content.text: is not valid base64"),
]


@pytest.mark.parametrize(("document", "message"), MALFORMED)
def test_a_malformed_har_document_says_where_it_is_wrong(document: object, message: str) -> None:
    with pytest.raises(HarError) as caught:
        parse_har(document)
    shown = str(caught.value)
    assert message in shown, shown
    assert "\n" not in shown


def write(path: Path, document: object) -> str:
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not JSON: Expecting value at line 1 column 1"),
        (b'{"log": ', "not JSON: Expecting value at line 1 column 9"),
        (b"\xff\xfe", "is not UTF-8 text"),
        (b"[" * 100_000, "not JSON that can be read: nested too deeply"),
        (json.dumps(broken(**{"response.status": None})).encode(), "log.entries[2].response.st"),
    ],
)
def test_the_replay_flag_refuses_a_bad_file_in_one_line_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "x.har"
    path.write_bytes(content)
    with pytest.raises(StandinSettingsError) as caught:
        settings_from_args(flags("--replay", str(path)))
    assert str(caught.value).startswith(f"--replay {path}: {message}")
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.har"
    with pytest.raises(StandinSettingsError) as caught:
        settings_from_args(flags("--replay", str(path)))
    assert str(caught.value) == f"--replay {path}: cannot read it: No such file or directory"


def test_a_good_file_becomes_a_recording_shown_without_its_bodies(tmp_path: Path) -> None:
    document = har(entry("GET", HOST + STATUS, content=text('"private body"')))
    path = write(tmp_path / "good.har", document)
    settings = settings_from_args(flags("--replay", path))
    assert settings.replay == load_recording(path)
    assert "private body" not in repr(settings)
    assert "1 exchanges" in repr(settings)


async def test_the_standin_command_refuses_a_malformed_file_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.har", broken(**{"response.status": None}))
    status, out, err = await run_standin_command("--replay", path)
    assert status == 2
    assert err == f"smartdoc-proxy: --replay {path}: log.entries[2].response.status: missing\n"
    assert out == ""


async def test_the_standin_command_replays_a_recorded_answer(tmp_path: Path) -> None:
    path = write(tmp_path / "good.har", har(entry("GET", HOST + STATUS, content=text('"rec"'))))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with proxy_command("standin", "--listen", f"127.0.0.1:{port}", "--replay", path):
        await wait_until_serving(base)
        async with aiohttp.ClientSession(base) as session:
            async with session.post("/connect/token", data=TOKEN_FORM) as response:
                token = (await response.json())["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(STATUS, headers=headers) as response:
                assert (response.status, await response.text()) == (200, '"rec"')
            async with session.get(STATUS) as response:
                assert response.status == 401
