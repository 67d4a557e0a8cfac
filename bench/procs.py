"""Processes the benchmark starts, and what their own counters in ``/proc`` say about them.

CPU time is each process's ``utime + stime`` (``/proc/PID/stat``), summed over the process and
its descendants so that a proxy with worker processes is counted whole; memory is ``VmRSS``
and ``VmHWM`` (the peak, which ``clear_refs`` resets) from ``/proc/PID/status``.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_open_files_limit() -> int:
    """Lift this process's soft RLIMIT_NOFILE to the hard limit; children inherit it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parent = int(_stat_fields(int(entry.name))[1])
                tree.setdefault(parent, []).append(int(entry.name))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    tree, found = _children_of(), [pid]
    for parent in found:
        found.extend(tree.get(parent, []))
    return found


def _stat_fields(pid: int) -> list[str]:
    # The command name, in parentheses, may hold spaces: split after its closing one.
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` and its descendants, in seconds."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = _stat_fields(member)
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS_PER_SECOND


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rss_mib(pid: int) -> float:
    """Resident memory now, of ``pid`` and its descendants."""
    return sum(_status_kib(member, "VmRSS") for member in process_tree(pid)) / 1024


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory (summed over the tree) since start or :func:`reset_peak_rss`."""
    return sum(_status_kib(member, "VmHWM") for member in process_tree(pid)) / 1024


def reset_peak_rss(pid: int) -> bool:
    """Reset the peak to the current RSS (Linux ``clear_refs`` 5); False if not permitted."""
    try:
        for member in process_tree(pid):
            Path(f"/proc/{member}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Child:
    """A process of the benchmark's, its output in a log file, stopped with SIGTERM."""

    def __init__(
        self, name: str, argv: Sequence[str], log_dir: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )
        self.pid = self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")


def wait_until_answers(child: Child, url: str, headers: Mapping[str, str], seconds: float) -> None:
    """Poll ``url`` until it answers 200; the child's log is shown if it dies first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        child.check_alive()
        request = urllib.request.Request(url, headers=dict(headers))  # noqa: S310 (loopback)
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(request, timeout=2) as response,  # noqa: S310
        ):
            if response.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not answer 200 at {url} within {seconds:g} s")


@contextlib.contextmanager
def started(children: list[Child]) -> Iterator[list[Child]]:
    try:
        yield children
    finally:
        for child in reversed(children):
            child.stop()
