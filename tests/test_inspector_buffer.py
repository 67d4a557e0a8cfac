"""The inspector's ring buffer: bounded, ordered, found by id, filtered, and waking its
listeners; and the body rules of the exchange record it keeps."""

from __future__ import annotations

import asyncio

import pytest
from multidict import CIMultiDict

from proxy.exchange import BODY_LIMIT_BYTES, BodyTee, Exchange, body_tee, kept_body, textual
from proxy.inspector.buffer import Buffer, Filter, FilterError


def exchange(target: str = "/api/x", status: int = 200, client: str = "anonymous") -> Exchange:
    finished = Exchange("GET", target, "127.0.0.1", client=client)
    finished.status = status
    finished.duration_seconds = 0.25
    return finished


def test_the_buffer_keeps_the_last_n_newest_first() -> None:
    buffer = Buffer(3)
    for number in range(5):
        buffer.observe(exchange(f"/api/{number}"))

    assert len(buffer) == 3
    assert [s.raw_target for s in buffer.snapshots()] == ["/api/4", "/api/3", "/api/2"]
    assert [s.id for s in buffer.snapshots()] == [5, 4, 3]


def test_the_proxy_s_own_endpoints_are_not_kept() -> None:
    buffer = Buffer(3)
    own = exchange("/_proxy/events")
    own.own = True
    buffer.observe(own)

    assert len(buffer) == 0


def test_a_snapshot_is_the_record_at_the_end_and_started_on_the_wall_clock() -> None:
    buffer = Buffer(3, wall_clock=lambda: 1000.0)
    finished = exchange()
    finished.upstream_seconds.append(0.1)
    buffer.observe(finished)
    finished.upstream_seconds.append(0.2)  # a record is never changed after; if it were…

    (snapshot,) = buffer.snapshots()
    assert snapshot.started_at == 999.75
    assert snapshot.upstream_seconds == (0.1,)


def test_exchanges_are_found_by_id_while_they_are_kept() -> None:
    buffer = Buffer(2)
    assert buffer.find(1) is None
    for number in range(3):
        buffer.observe(exchange(f"/api/{number}"))

    assert buffer.find(1) is None
    found = buffer.find(3)
    assert found is not None
    assert found.raw_target == "/api/2"
    assert buffer.find(4) is None


def test_after_gives_the_newer_ones_oldest_first() -> None:
    buffer = Buffer(10)
    for number in range(4):
        buffer.observe(exchange(f"/api/{number}"))

    assert [s.id for s in buffer.after(2)] == [3, 4]
    assert buffer.after(4) == []
    assert [s.id for s in buffer.after(0)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ({}, ["/api/a?x=1", "/API/b", "/other"]),
        ({"status": "4xx"}, ["/API/b"]),
        ({"status": "404"}, ["/API/b"]),
        ({"status": "401"}, []),
        ({"status": "2XX"}, ["/api/a?x=1", "/other"]),
        ({"client": "alice"}, ["/api/a?x=1"]),
        ({"client": "ali"}, []),
        ({"path": "api"}, ["/api/a?x=1", "/API/b"]),
        ({"path": "x=1"}, ["/api/a?x=1"]),
        ({"path": "api", "status": "2xx", "client": "alice"}, ["/api/a?x=1"]),
    ],
)
def test_filters(query: dict[str, str], shown: list[str]) -> None:
    buffer = Buffer(10)
    buffer.observe(exchange("/other", 200))
    buffer.observe(exchange("/API/b", 404, client="bob"))
    buffer.observe(exchange("/api/a?x=1", 200, client="alice"))

    assert [s.raw_target for s in buffer.snapshots(Filter.of(query))] == shown


@pytest.mark.parametrize("status", ["6xx", "xx", "40", "4044", "abc"])
def test_a_filter_that_means_nothing_is_refused(status: str) -> None:
    with pytest.raises(FilterError):
        Filter.of({"status": status})


async def test_a_listener_wakes_when_an_exchange_arrives() -> None:
    buffer = Buffer(10)
    waiting = asyncio.create_task(buffer.wait(0, timeout_seconds=30))
    await asyncio.sleep(0.01)
    assert not waiting.done()

    buffer.observe(exchange())

    await asyncio.wait_for(waiting, 1)


async def test_a_listener_that_is_behind_does_not_wait() -> None:
    buffer = Buffer(10)
    buffer.observe(exchange())

    await asyncio.wait_for(buffer.wait(0, timeout_seconds=30), 1)


async def test_a_listener_waits_no_longer_than_told() -> None:
    await asyncio.wait_for(Buffer(10).wait(0, timeout_seconds=0.01), 1)


async def test_closing_wakes_every_listener_for_good() -> None:
    buffer = Buffer(10)
    waiting = [asyncio.create_task(buffer.wait(0, timeout_seconds=30)) for _ in range(3)]
    await asyncio.sleep(0.01)

    buffer.close()

    await asyncio.wait_for(asyncio.gather(*waiting), 1)
    await asyncio.wait_for(buffer.wait(0, timeout_seconds=30), 1)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Content-Type": "application/json"}, True),
        ({"Content-Type": "application/json; charset=utf-8"}, True),
        ({"Content-Type": "application/problem+json"}, True),
        ({"Content-Type": "text/plain"}, True),
        ({"Content-Type": "TEXT/CSV"}, True),
        ({"Content-Type": "application/x-www-form-urlencoded"}, True),
        ({"Content-Type": "application/pdf"}, False),
        ({"Content-Type": "multipart/form-data; boundary=x"}, False),
        ({"Content-Type": "application/octet-stream"}, False),
        ({}, False),
        ({"Content-Type": "application/json", "Content-Encoding": "gzip"}, False),
        ({"Content-Type": "application/json", "Content-Encoding": "identity"}, True),
    ],
)
def test_which_bodies_are_text(headers: dict[str, str], expected: bool) -> None:
    assert textual(CIMultiDict(headers)) is expected


def test_a_body_is_kept_whole_up_to_the_limit_and_not_at_all_beyond() -> None:
    json_type = CIMultiDict({"Content-Type": "application/json"})

    assert kept_body(json_type, b"x" * BODY_LIMIT_BYTES) == b"x" * BODY_LIMIT_BYTES
    assert kept_body(json_type, b"x" * (BODY_LIMIT_BYTES + 1)) is None
    assert kept_body(CIMultiDict({"Content-Type": "application/pdf"}), b"%PDF") is None


def test_a_tee_keeps_a_streamed_body_up_to_the_limit_and_nothing_beyond() -> None:
    small, large = BodyTee(), BodyTee()
    for _ in range(4):
        small.add(b"a" * (BODY_LIMIT_BYTES // 4))
        large.add(b"a" * (BODY_LIMIT_BYTES // 4))
    large.add(b"a")
    large.add(b"")

    assert small.body() == b"a" * BODY_LIMIT_BYTES
    assert large.body() is None


def test_a_tee_is_made_only_for_text_when_bodies_are_kept() -> None:
    json_type = CIMultiDict({"Content-Type": "application/json"})

    assert body_tee(json_type, keep=True) is not None
    assert body_tee(json_type, keep=False) is None
    assert body_tee(CIMultiDict({"Content-Type": "image/png"}), keep=True) is None


def test_neither_an_exchange_nor_its_snapshot_shows_headers_or_bodies_in_its_repr() -> None:
    key, token = "alice-key-0123456789abcdef", "tok-said-back"
    exchange = Exchange("GET", "/api/x", "127.0.0.1", status=200)
    exchange.request_headers = CIMultiDict({"X-Proxy-Key": key})
    exchange.response_headers = CIMultiDict({"X-Echo": token})
    exchange.request_body, exchange.response_body = key.encode(), token.encode()
    buffer = Buffer(1)
    buffer.observe(exchange)
    (snapshot,) = buffer.snapshots()
    for shown in (repr(exchange), repr(snapshot), str(snapshot)):
        assert key not in shown
        assert token not in shown
    assert repr(snapshot) == "Snapshot(id=1, GET /api/x 200)"
