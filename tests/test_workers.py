"""``run --workers N`` as real processes: one port served by N workers (SO_REUSEPORT), each
with its own token, and the metrics, the inspector and the access log right across them; a
worker that dies is replaced; signals reach every worker; no worker outlives its supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from proxy.config import Config, Listen, load_config
from proxy.logs import chunks
from proxy.supervisor import Supervisor
from proxy.workers import Addresses, Worker, reserve
from tests.fakes import SECRET, child_env, free_port
from tests.test_server import (
    ALICE,
    BOB,
    ROOT,
    Fakes,
    Running,
    _base,
    _drain,
    _eventually,
    _said,
    fakes,
    fetch,
    finished,
    running,
    start,
    status_with_key,
)

__all__ = ["fakes"]  # the fixture, used by name

REQUESTS = 40
PIDS = re.compile(r"2 workers serve \S+ \(SO_REUSEPORT\), pids (\d+), (\d+)")


async def _pids(proxy: Running) -> list[int]:
    """The workers' pids, as the supervisor announced them."""
    for _ in range(100):
        for line in proxy.err:
            if found := PIDS.search(line):
                return [int(found[1]), int(found[2])]
        await asyncio.sleep(0.05)
    pytest.fail("the supervisor never said which workers serve: " + "".join(proxy.err))


async def _requests(proxy: Running | str, count: int = REQUESTS) -> list[int]:
    # A fresh connection each: the kernel spreads new connections over the workers.
    url = proxy if isinstance(proxy, str) else proxy.url
    return [(await fetch(url + "/api/x"))[0] for _ in range(count)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _gone(pids: list[int], seconds: float = 15.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if not any(_alive(pid) for pid in pids):
            return True
        await asyncio.sleep(0.05)
    return False


def _sample(text: str, name: str) -> float:
    """The sum of a series' samples in a Prometheus text exposition."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


async def test_two_workers_serve_one_port_each_with_a_token_of_its_own(fakes: Fakes) -> None:
    async with running(fakes, "--workers", "2") as proxy:
        pids = await _pids(proxy)
        assert len(set(pids)) == 2
        assert all(_alive(pid) for pid in pids)
        assert await _requests(proxy) == [200] * REQUESTS
        # Each worker fetched its own token at start, and both answered requests with it.
        assert sorted(fakes.endpoint.issued) == ["token-1", "token-2"]
        assert set(fakes.upstream.tokens_seen) == {"token-1", "token-2"}


async def test_any_worker_scraped_reports_the_metrics_of_all(fakes: Fakes) -> None:
    async with running(fakes, "--workers", "2") as proxy:
        await _pids(proxy)  # every worker serves
        await _requests(proxy)
        assert set(fakes.upstream.tokens_seen) == {"token-1", "token-2"}
        # Each worker samples its token's expiry every second for the others to read.
        await asyncio.sleep(1.2)
        for _ in range(8):  # each scrape on a new connection, so on either worker
            status, text = await fetch(proxy.url + "/_proxy/metrics")
            assert status == 200
            assert _sample(text, "smartdoc_proxy_requests_total") == REQUESTS
            assert _sample(text, "smartdoc_proxy_request_duration_seconds_count") == REQUESTS
            assert _sample(text, 'smartdoc_proxy_token_fetches_total{outcome="success"}') == 2
            # The soonest-expiring of the workers' tokens: one series, not one per worker.
            expiry = [
                line
                for line in text.splitlines()
                if line.startswith("smartdoc_proxy_token_expires")
            ]
            assert len(expiry) == 1
            assert 3000 < float(expiry[0].split()[1]) <= 3600


async def _exchanges(proxy: Running) -> list[dict[str, object]]:
    status, text = await fetch(proxy.url + "/_proxy/exchanges")
    assert status == 200, text
    shown: list[dict[str, object]] = json.loads(text)["exchanges"]
    return shown


async def test_the_inspector_shows_every_workers_exchanges_from_either(fakes: Fakes) -> None:
    async with running(fakes, "--workers", "2") as proxy:
        await _pids(proxy)  # every worker serves
        await _requests(proxy)
        assert set(fakes.upstream.tokens_seen) == {"token-1", "token-2"}
        await _eventually(lambda: _count(proxy), REQUESTS)
        for _ in range(8):  # on either worker: worker 1 answers for both
            shown = await _exchanges(proxy)
            assert len(shown) == REQUESTS
            assert sorted(each["id"] for each in shown) == list(range(1, REQUESTS + 1))
        for each in shown:  # every header of every leg came across, in order
            status, text = await fetch(proxy.url + f"/_proxy/exchange?id={each['id']}")
            assert status == 200
            headers = json.loads(text)["headers"]
            assert ["Host", proxy.url.removeprefix("http://")] in headers["client"]
            assert headers["upstreamResponse"][0][0] == "Content-Type"
            assert len(headers["response"]) >= 2
        status, text = await fetch(proxy.url + "/_proxy/exchanges.har")
        assert status == 200
        assert len(json.loads(text)["log"]["entries"]) == REQUESTS


async def _count(proxy: Running) -> int:
    return len(await _exchanges(proxy))


def _wake_ups(pid: int) -> int:
    """How many times the process has slept and been woken (its voluntary context switches)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.MULTILINE)[1])  # type: ignore[index]


async def test_an_idle_worker_does_not_wake_to_send_the_inspector_nothing(fakes: Fakes) -> None:
    async with running(fakes, "--workers", "2") as proxy:
        pids = await _pids(proxy)
        await _requests(proxy)
        await _eventually(lambda: _count(proxy), REQUESTS)  # both have sent what they had
        before = [_wake_ups(pid) for pid in pids]
        await asyncio.sleep(2)
        woken = [_wake_ups(pid) - b for pid, b in zip(pids, before, strict=True)]
    # Idle, a worker wakes for its once-a-second timers; sending a batch every 50 ms whether
    # or not there is one made the second worker wake 40 times in these 2 s.
    assert max(woken) < 20, woken


async def test_the_inspectors_gate_is_kept_by_the_worker_a_request_comes_to(
    fakes: Fakes, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"alice {ALICE}\nbob {BOB}\n")
    flags = ("--workers", "2", "--inbound-keys-file", str(keys))
    async with running(
        fakes, *flags, "--inspector", "keys", "--inspector-clients", "alice"
    ) as proxy:
        await _pids(proxy)
        for _ in range(8):
            assert (await fetch(proxy.url + "/_proxy/exchanges", {"X-Proxy-Key": BOB}))[0] == 403
            assert (await fetch(proxy.url + "/_proxy/exchanges"))[0] == 401
            assert (await fetch(proxy.url + "/_proxy/exchanges", {"X-Proxy-Key": ALICE}))[0] == 200


async def test_the_access_log_has_one_whole_line_per_request_across_workers(
    fakes: Fakes,
) -> None:
    async with running(fakes, "--workers", "2", "--log-format", "json") as proxy:
        await _pids(proxy)
        await asyncio.gather(*(_requests(proxy, REQUESTS // 4) for _ in range(4)))
        assert set(fakes.upstream.tokens_seen) == {"token-1", "token-2"}
        await asyncio.sleep(0.3)  # the workers' batches are written every 50 ms
    lines = [json.loads(line) for line in proxy.err]  # a torn or interleaved line fails here
    access = [line for line in lines if line["logger"] == "proxy.access"]
    assert len([line for line in access if line["path"] == "/api/x"]) == REQUESTS
    # Each line says which process wrote it.
    assert {line["process"] for line in access} == {"worker 1", "worker 2"}
    assert any(line["process"] == "supervisor" for line in lines)


async def test_a_worker_that_dies_is_replaced_and_the_other_serves_meanwhile(
    fakes: Fakes,
) -> None:
    async with running(fakes, "--workers", "2") as proxy:
        first, second = await _pids(proxy)
        os.kill(first, signal.SIGKILL)
        assert await _gone([first])
        # The other worker serves at once; the kernel no longer offers the dead one's socket.
        assert await _requests(proxy, 10) == [200] * 10
        await _eventually(lambda: _said(proxy, "starting another"), True)
        await _eventually(lambda: _said(proxy, "worker 1 of 2 (pid"), True)
        await _eventually(lambda: _tokens(fakes), 3)  # the new worker's own token
        assert _alive(second)
        assert await _requests(proxy) == [200] * REQUESTS
        assert "token-3" in fakes.upstream.tokens_seen[-REQUESTS:]


def _serving(proxy: Running) -> list[int]:
    """The pids of the workers that said they serve, in the order they said it."""
    return [int(pid) for pid in re.findall(r"\(pid (\d+)\) serving", "".join(proxy.err))]


async def _count_serving(proxy: Running) -> int:
    return len(_serving(proxy))


async def _tokens(fakes: Fakes) -> int:
    return len(fakes.endpoint.issued)


async def test_sigterm_stops_every_worker_and_the_supervisor_says_so(fakes: Fakes) -> None:
    async with running(fakes, "--workers", "2") as proxy:
        pids = await _pids(proxy)
        proxy.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proxy.process.wait(), 15) == 0
        assert await _gone(pids, 1.0)
    assert any("stopped: every worker has finished" in line for line in proxy.err)
    assert sum("SIGTERM received" in line for line in proxy.err) == 3  # supervisor, 2 workers


async def test_no_worker_outlives_a_killed_supervisor(fakes: Fakes) -> None:
    async with running(fakes, "--workers", "2") as proxy:
        pids = await _pids(proxy)
        proxy.process.kill()
        assert await _gone(pids)
    assert sum("the supervisor is gone; stopping" in line for line in proxy.err) == 2


async def test_sighup_reaches_every_worker(fakes: Fakes, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"alice {ALICE}\n")
    async with running(fakes, "--workers", "2", "--inbound-keys-file", str(keys)) as proxy:
        await _pids(proxy)
        keys.write_text(f"bob {BOB}\n")
        proxy.process.send_signal(signal.SIGHUP)
        await _eventually(lambda: _reloads(proxy), 2)
        for _ in range(8):  # whichever worker the connection reaches
            assert await status_with_key(proxy, BOB) == 200
            assert await status_with_key(proxy, ALICE) == 401


async def _reloads(proxy: Running) -> int:
    return sum("reloaded the configuration" in line for line in proxy.err)


async def test_a_busy_port_stops_the_supervisor_before_any_worker_starts(fakes: Fakes) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _, err = await finished(
            *_base(fakes, port), "--workers", "2", env={"SMARTDOC_CLIENT_SECRET": SECRET}
        )
    assert status == 2
    assert err.strip().splitlines() == [
        "smartdoc-proxy: --listen / SMARTDOC_PROXY_LISTEN: "
        f"cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert fakes.endpoint.requests == []


async def test_port_zero_is_settled_once_for_every_worker(fakes: Fakes) -> None:
    argv = [*_base(fakes, 0), "--workers", "2"]
    env = {"SMARTDOC_CLIENT_SECRET": SECRET}
    process = await start(*argv, env=env)
    proxy = Running(process, 0)
    assert process.stderr is not None
    try:
        while not proxy.port:
            line = (await asyncio.wait_for(process.stderr.readline(), 15)).decode()
            proxy.err.append(line)
            if found := re.search(r"2 workers serve 127\.0\.0\.1:(\d+)", line):
                proxy.port = int(found[1])
        assert await _requests(proxy, 20) == [200] * 20
        assert set(fakes.upstream.tokens_seen) == {"token-1", "token-2"}
    finally:
        process.terminate()
        await asyncio.wait_for(process.communicate(), 15)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("0", "--workers / SMARTDOC_PROXY_WORKERS: must be positive, not 0"),
        ("two", "--workers / SMARTDOC_PROXY_WORKERS: 'two' is not a whole number"),
        ("65", "--workers / SMARTDOC_PROXY_WORKERS: 65 is more workers than the 64 allowed"),
    ],
)
async def test_a_bad_number_of_workers_is_one_line(fakes: Fakes, given: str, said: str) -> None:
    status, _, err = await finished(
        *_base(fakes, free_port()), "--workers", given, env={"SMARTDOC_CLIENT_SECRET": SECRET}
    )
    assert status == 2
    assert err.strip().splitlines() == [f"smartdoc-proxy: {said}"]


@pytest.mark.parametrize(
    ("lines", "most", "expected"),
    [
        ([], 10, []),
        (["ab\n", "cd\n"], 10, ["ab\ncd\n"]),
        (["abcd\n", "efgh\n", "ij\n"], 10, ["abcd\nefgh\n", "ij\n"]),
        (["a very long line\n", "b\n"], 10, ["a very long line\n", "b\n"]),
        (["é" * 4 + "\n", "x\n"], 10, ["éééé\n", "x\n"]),  # 9 bytes in UTF-8, then 2 more
    ],
)
def test_log_lines_are_written_whole_in_chunks_a_pipe_keeps_apart(
    lines: list[str], most: int, expected: list[str]
) -> None:
    assert chunks(lines, most) == expected


def test_a_worker_is_told_what_it_is_and_keeps_the_reserved_addresses(tmp_path: Path) -> None:
    worker = Worker(2, 3, tmp_path, {"listen": ("127.0.0.1", 4321)}, 7, 8)
    assert Worker.of({"SMARTDOC_PROXY_WORKER": worker.encode()}) == worker
    assert Worker.of({}) is None
    assert str(worker) == "worker 2 of 3"
    assert not worker.keeps_inspector
    assert worker.inspector_socket == tmp_path / "inspector.sock"

    config = load_config(
        {"listen": "127.0.0.1:0", "upstream": "https://api.example", "client_id": "x"},
        {"SMARTDOC_CLIENT_SECRET": "s"},
    )
    assert worker.bound(config).listen == Listen("127.0.0.1", 4321)


def _config(fakes: Fakes, port: int) -> Config:
    return load_config(
        {"listen": f"127.0.0.1:{port}", "upstream": fakes.upstream_url,
         "token_url": fakes.token_url, "client_id": "x", "workers": "2"},
        {"SMARTDOC_CLIENT_SECRET": SECRET},
    )  # fmt: skip


ENV = child_env(SMARTDOC_CLIENT_SECRET=SECRET)


@contextlib.contextmanager
def _supervisor_here(
    fakes: Fakes, tmp_path: Path, argv: list[str]
) -> Iterator[tuple[Supervisor, Addresses]]:
    """A supervisor made in this process, for the workers ``argv`` starts, on addresses
    reserved for it (given back at the end), with its run's directory in ``tmp_path``."""
    config = _config(fakes, 0)
    sockets, addresses = reserve(config)
    (tmp_path / "metrics").mkdir()
    try:
        yield Supervisor(config, argv, ENV, tmp_path, addresses), addresses
    finally:
        sockets.close()


async def test_a_worker_that_cannot_start_ends_the_run_with_its_status(
    fakes: Fakes, tmp_path: Path
) -> None:
    # What the workers are started with lacks the client id: each exits 2 before it serves.
    argv = ["--listen", "127.0.0.1:0", "--upstream", fakes.upstream_url]
    with _supervisor_here(fakes, tmp_path, argv) as (supervisor, _):
        assert await asyncio.wait_for(supervisor.run(), 30) == 2
    assert fakes.endpoint.requests == []


async def test_a_supervisor_asked_to_stop_stops_its_workers_and_returns_0(
    fakes: Fakes, tmp_path: Path
) -> None:
    argv = [*_base(fakes, 0)[1:], "--workers", "2"]
    with _supervisor_here(fakes, tmp_path, argv) as (supervisor, addresses):
        running_for = asyncio.create_task(supervisor.run())
        await _eventually(lambda: _tokens(fakes), 2, seconds=20)
        url = f"http://127.0.0.1:{addresses['listen'][1]}"
        assert await _requests(url, 10) == [200] * 10
        pids = [each.process.pid for each in supervisor.running.values()]
        supervisor.stop()
        assert await asyncio.wait_for(running_for, 20) == 0
        assert await _gone(pids, 1.0)


async def _echo_authorization(request: web.Request) -> web.StreamResponse:
    # An upstream that says back the token it got: the worst case for the inspector.
    return web.json_response({"seen": request.headers.get("Authorization", "")})


async def test_no_workers_token_reaches_the_inspector_whichever_recorded_it(
    fakes: Fakes,
) -> None:
    fakes.upstream.responder = _echo_authorization
    async with running(fakes, "--workers", "2", "--inspect-bodies") as proxy:
        await _pids(proxy)
        await _requests(proxy, 20)
        assert set(fakes.upstream.tokens_seen) == {"token-1", "token-2"}
        await _eventually(lambda: _count(proxy), 20)
        shown = [(await fetch(proxy.url + f"/_proxy/exchange?id={id}"))[1] for id in range(1, 21)]
        har = (await fetch(proxy.url + "/_proxy/exchanges.har"))[1]
    for text in (*shown, har):
        assert "token-1" not in text
        assert "token-2" not in text
    assert all(
        '"seen\\": \\"Bearer [redacted]\\"' in text or "[redacted]" in text for text in shown
    )


async def test_a_signal_to_the_whole_process_group_lets_requests_in_flight_finish(
    fakes: Fakes,
) -> None:
    fakes.upstream.delays["/api/slow"] = 2.0
    async with _supervisor(fakes, process_group=0) as proxy:
        slow = [asyncio.create_task(fetch(proxy.url + "/api/slow")) for _ in range(6)]
        await _eventually(lambda: _arrived(fakes, "/api/slow"), 6)
        os.killpg(proxy.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert [status for status, _ in await asyncio.gather(*slow)] == [200] * 6
        assert await asyncio.wait_for(proxy.process.wait(), 15) == 0


@contextlib.asynccontextmanager
async def _supervisor(
    fakes: Fakes, *python: str, cwd: Path = ROOT, process_group: int | None = None
) -> AsyncIterator[Running]:
    """``python [python…] -m proxy run … --workers 2`` started as the test says, once both
    workers serve; stopped (killed, if need be) at the end."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, *python, "-m", "proxy", *_base(fakes, port), "--workers", "2",
        cwd=cwd, env=ENV, process_group=process_group,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    proxy = Running(process, port)
    assert process.stderr is not None
    reader = asyncio.create_task(_drain(process.stderr, proxy.err))
    try:
        await _pids(proxy)
        yield proxy
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()
        await reader


async def _arrived(fakes: Fakes, path: str) -> int:
    return sum(1 for each in fakes.upstream.received if each.raw_path == path)


async def test_a_second_proxy_with_workers_cannot_join_a_port_in_use(fakes: Fakes) -> None:
    async with running(fakes, "--workers", "2") as proxy:
        await _pids(proxy)
        status, _, err = await finished(
            *_base(fakes, proxy.port), "--workers", "2", env={"SMARTDOC_CLIENT_SECRET": SECRET}
        )
        assert status == 2
        assert err.strip().splitlines() == [
            "smartdoc-proxy: --listen / SMARTDOC_PROXY_LISTEN: "
            f"cannot listen on 127.0.0.1:{proxy.port}: Address already in use"
        ]


async def test_a_replacement_runs_as_the_run_started_whatever_the_file_says_now(
    fakes: Fakes, tmp_path: Path
) -> None:
    toml = tmp_path / "proxy.toml"
    toml.write_text('workers = 2\ninspector = "loopback"\n')
    async with running(fakes, "--config", str(toml)) as proxy:
        first, _ = await _pids(proxy)
        # A change that needs a restart, then one that makes the file invalid.
        toml.write_text('workers = 2\ninspector = "off"\n')
        os.kill(first, signal.SIGKILL)
        await _eventually(lambda: _said(proxy, "inspector changed since the workers started"), True)
        await _eventually(lambda: _count_serving(proxy), 3)
        for _ in range(8):  # every worker, the replacement too, still has the inspector
            assert (await fetch(proxy.url + "/_proxy/exchanges"))[0] == 200
        toml.write_text("workers = 2\nupstream = \n")
        replacement = _serving(proxy)[-1]
        os.kill(replacement, signal.SIGKILL)
        await _eventually(lambda: _said(proxy, "trying again in"), True, seconds=10)
        # The other worker serves on meanwhile, and the run is not given up.
        assert await _requests(proxy, 10) == [200] * 10
        assert proxy.process.returncode is None
        toml.write_text("workers = 2\n")
        await _eventually(lambda: _tokens(fakes), 4, seconds=15)
        assert await _requests(proxy) == [200] * REQUESTS


async def test_workers_are_the_installed_proxy_whatever_the_working_directory_holds(
    fakes: Fakes, tmp_path: Path
) -> None:
    impostor = tmp_path / "proxy"
    impostor.mkdir()
    (impostor / "__init__.py").write_text("")
    (impostor / "__main__.py").write_text("import sys\nsys.exit(3)\n")
    async with _supervisor(fakes, "-P", cwd=tmp_path) as proxy:
        assert await _requests(proxy, 10) == [200] * 10
