"""What the outside world can make the proxy log: one line per event at most, rate-limited,
no traceback. Each test runs the real process and reads its stderr."""

from __future__ import annotations

import asyncio
import resource
import socket
import sys

import pytest

from proxy.logs import OneLinePerEvent
from tests.fakes import child_env, free_port

MALFORMED = [
    b"GE\x00T / HTTP/1.1\r\nHost: p\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: p\r\nBad Header\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


async def _demo(port: int, nofile: int | None = None) -> asyncio.subprocess.Process:
    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "demo", "--listen", f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=child_env(), preexec_fn=limit,
    )  # fmt: skip
    assert process.stdout is not None
    while b"curl" not in await asyncio.wait_for(process.stdout.readline(), 20):
        pass
    return process


async def _stderr_after_stop(process: asyncio.subprocess.Process) -> list[str]:
    process.terminate()
    _, err = await asyncio.wait_for(process.communicate(), 20)
    return err.decode(errors="replace").splitlines()


async def _send(port: int, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    await asyncio.wait_for(reader.read(), 5)
    writer.close()


async def test_malformed_requests_log_one_line_each_at_most_and_no_traceback() -> None:
    port = free_port()
    process = await _demo(port)
    for _ in range(10):
        await asyncio.gather(*(_send(port, request) for request in MALFORMED))
    lines = await _stderr_after_stop(process)
    assert not [line for line in lines if "Traceback" in line]
    errors = [line for line in lines if "Error handling request" in line]
    assert 1 <= len(errors) <= 3, lines


async def test_running_out_of_file_descriptors_does_not_flood_the_log() -> None:
    port = free_port()
    process = await _demo(port, nofile=40)
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(60)]
    await asyncio.sleep(2.5)
    for sock in sockets:
        sock.close()
    await asyncio.sleep(1.5)  # the accept loop resumes once descriptors are free again
    request = b"GET /_proxy/healthz HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    lines = await _stderr_after_stop(process)
    assert not [line for line in lines if "Traceback" in line]
    emfile = [line for line in lines if "Too many open files" in line]
    # At most one a second over the test's few seconds (uvloop, when installed, logs none).
    assert len(emfile) <= 8, lines


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([0.0], ["boom: oops"]),
        ([0.0, 0.1, 0.2], ["boom: oops"]),
        ([0.0, 0.1, 1.5], ["boom: oops", "boom: oops (1 more like it held back)"]),
        ([0.0, 2.0, 4.0], ["boom: oops"] * 3),
    ],
)
def test_one_line_per_event_filter(times: list[float], expected: list[str]) -> None:
    import logging

    clock = Clock()
    flt = OneLinePerEvent(1.0, clock)
    passed = []
    for now in times:
        clock.now = now
        try:
            raise OSError("oops")
        except OSError:
            record = logging.LogRecord("asyncio", 40, "f", 1, "boom\nmore", None, sys.exc_info())
        if flt.filter(record):
            assert record.exc_info is None
            passed.append(record.getMessage())
    assert passed == expected
